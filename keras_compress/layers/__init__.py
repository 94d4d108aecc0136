"""Drop-in layers: subclasses of Keras layers with the same signatures.

Quantization-aware: `QuantDense`, `QuantConv1D`, `QuantConv2D`,
`QuantDepthwiseConv2D`, `Quantize` (activations); binary: `BinaryDense`,
`BinaryConv2D` (with the `WeightClip` constraint).
"""

from keras_compress.layers.quantized import BinaryConv2D
from keras_compress.layers.quantized import BinaryDense
from keras_compress.layers.quantized import QuantConv1D
from keras_compress.layers.quantized import QuantConv2D
from keras_compress.layers.quantized import QuantDense
from keras_compress.layers.quantized import QuantDepthwiseConv2D
from keras_compress.layers.quantized import QuantLayer
from keras_compress.layers.quantized import Quantize
from keras_compress.layers.quantized import WeightClip

__all__ = [
    "BinaryConv2D",
    "BinaryDense",
    "QuantConv1D",
    "QuantConv2D",
    "QuantDense",
    "QuantDepthwiseConv2D",
    "QuantLayer",
    "Quantize",
    "WeightClip",
]
