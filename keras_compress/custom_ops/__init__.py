"""Custom operators: bit-packed binary layers for LiteRT and TFLite Micro.

`BinaryDense` and `BinaryConv2D` exported with `to_tflite(...,
binary="packed")` or `to_micro(..., binary="packed")` become the custom
operators `KC_BINARY_FC` and `KC_BINARY_CONV2D`: weights stored as bits
(32 to a word), XOR and popcount where the inputs are binarized, and
TFLite's own int8 arithmetic, so their outputs are bit-identical to the
builtin int8 operators.

The kernels are C99 (`sources()`): a core with no allocation and nothing
beyond `stdint.h`, a LiteRT external delegate, TFLite Micro kernels and a
`MicroMutableOpResolver` adapter for firmware. `LiteRTModel` and
`MicroModel` compile and load them on demand with the machine's C compiler
(`build`), so packed files run and are verified here.
"""

from keras_compress.custom_ops._build import BuildError
from keras_compress.custom_ops._build import build
from keras_compress.custom_ops._build import source_dir
from keras_compress.custom_ops.options import OP_NAMES
from keras_compress.custom_ops._runtimes import PINNED_TFLM
from keras_compress.custom_ops._runtimes import litert_delegate
from keras_compress.custom_ops._runtimes import micro_registerers

OPS = tuple(OP_NAMES.values())
# As `keras_compress.analysis` and the runtimes name operators.
CUSTOM_OP_NAMES = tuple(f"CUSTOM:{op}" for op in OPS)
FIRMWARE_SOURCES = ("kc_binary.h", "kc_binary.c", "kc_tflm_ops.h")

__all__ = ["BuildError", "CUSTOM_OP_NAMES", "FIRMWARE_SOURCES", "OPS", "PINNED_TFLM", "build",
           "litert_delegate", "micro_registerers", "source_dir"]
