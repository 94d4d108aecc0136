"""Drop-in layers: subclasses of Keras layers with the same signatures.

Quantization-aware: `QuantDense`, `QuantConv1D`, `QuantConv2D`,
`QuantDepthwiseConv2D`, `Quantize` (activations); binary: `BinaryDense`,
`BinaryConv2D` (with the `WeightClip` constraint).

Cheaper architectures: `DepthwiseSeparableConv2D`, `LowRankDense`,
`LowRankConv2D` (see `keras_compress.factorization`).

Dynamic computation: `EarlyExitHead` (see `keras_compress.early_exit`);
`SlimmableConv2D`, `SlimmableDense`, `SwitchableBatchNormalization` (see
`keras_compress.slimmable`).
"""

from keras_compress.layers.early_exit import EarlyExitHead
from keras_compress.layers.factorized import DepthwiseSeparableConv2D
from keras_compress.layers.factorized import LowRankConv2D
from keras_compress.layers.factorized import LowRankDense
from keras_compress.layers.quantized import BinaryConv2D
from keras_compress.layers.quantized import BinaryDense
from keras_compress.layers.quantized import QuantConv1D
from keras_compress.layers.quantized import QuantConv2D
from keras_compress.layers.quantized import QuantDense
from keras_compress.layers.quantized import QuantDepthwiseConv2D
from keras_compress.layers.quantized import QuantLayer
from keras_compress.layers.quantized import Quantize
from keras_compress.layers.quantized import WeightClip
from keras_compress.layers.slimmable import SlimmableConv2D
from keras_compress.layers.slimmable import SlimmableDense
from keras_compress.layers.slimmable import SlimmableLayer
from keras_compress.layers.slimmable import SwitchableBatchNormalization
from keras_compress.layers.slimmable import active_channels

__all__ = [
    "BinaryConv2D",
    "BinaryDense",
    "DepthwiseSeparableConv2D",
    "EarlyExitHead",
    "LowRankConv2D",
    "LowRankDense",
    "QuantConv1D",
    "QuantConv2D",
    "QuantDense",
    "QuantDepthwiseConv2D",
    "QuantLayer",
    "Quantize",
    "SlimmableConv2D",
    "SlimmableDense",
    "SlimmableLayer",
    "SwitchableBatchNormalization",
    "WeightClip",
    "active_channels",
]
