"""Quantization-aware layers: drop-ins for Keras layers, plus binary layers."""

from keras_compress.layers.quantized.base_quant import QuantLayer
from keras_compress.layers.quantized.binary_conv2d import BinaryConv2D
from keras_compress.layers.quantized.binary_dense import BinaryDense
from keras_compress.layers.quantized.quant_conv1d import QuantConv1D
from keras_compress.layers.quantized.quant_conv2d import QuantConv2D
from keras_compress.layers.quantized.quant_dense import QuantDense
from keras_compress.layers.quantized.quant_depthwise_conv2d import (
    QuantDepthwiseConv2D,
)
from keras_compress.layers.quantized.quantize import Quantize
from keras_compress.layers.quantized.weight_clip import WeightClip

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
