"""Bit-packed binary operators in an int8 `.tflite` (`binary="packed"`).

`pack(data, model)` rewrites the builtin int8 file of a model: the
FULLY_CONNECTED and CONV_2D operators of its `BinaryDense` and
`BinaryConv2D` layers become `KC_BINARY_FC` / `KC_BINARY_CONV2D` custom
operators (see `keras_compress.custom_ops`).
"""

from keras_compress.export._packed.rewrite import Check
from keras_compress.export._packed.rewrite import PackedLayer
from keras_compress.export._packed.rewrite import pack
from keras_compress.export._packed.verify import verify

__all__ = ["Check", "PackedLayer", "pack", "verify"]
