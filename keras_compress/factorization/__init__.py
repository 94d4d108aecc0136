"""Factorization: fewer weights through a cheaper layer structure.

`factorize` replaces `Dense` layers by SVD-initialized `LowRankDense`
layers; `to_depthwise_separable` replaces trained `Conv2D` layers by
`DepthwiseSeparableConv2D` layers fitted to their outputs. Both return a new
model (ready to compile and fine-tune) and a `FactorizationReport`.
"""

from keras_compress.factorization.depthwise_separable import (
    to_depthwise_separable,
)
from keras_compress.factorization.factorization_report import (
    FactorizationReport,
)
from keras_compress.factorization.factorize import factorize

__all__ = [
    "FactorizationReport",
    "factorize",
    "to_depthwise_separable",
]
