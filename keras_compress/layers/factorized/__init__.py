"""Factorized layers: fewer weights and MACs through a cheaper structure.

`DepthwiseSeparableConv2D` (depthwise + pointwise convolution, with optional
BatchNormalization and activations in between), `LowRankDense` (a rank-r
dense kernel, `U @ V`) and `LowRankConv2D` (a `k x k` conv to `rank`
channels, then a `1 x 1` conv).
"""

from keras_compress.layers.factorized.depthwise_separable_conv2d import (
    DepthwiseSeparableConv2D,
)
from keras_compress.layers.factorized.low_rank_conv2d import LowRankConv2D
from keras_compress.layers.factorized.low_rank_dense import LowRankDense

__all__ = [
    "DepthwiseSeparableConv2D",
    "LowRankConv2D",
    "LowRankDense",
]
