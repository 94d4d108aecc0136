"""keras-compress: model compression for Keras 3.

Subpackages:
  datasets: offline demo data (`load_digits`, `load_mnist1d`).
  analysis: parameters, non-zeros, MACs and bytes of a model (`summarize`).
  export: verified writers for LiteRT/TFLite, TFLite Micro and ONNX.
  runtime: run and time an exported artifact (`LiteRTModel`, `MicroModel`,
    `ONNXModel`).
"""

import os

# TensorFlow's C++ logging is noise for our users; respect an explicit choice.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

from keras_compress import analysis  # noqa: E402
from keras_compress import datasets  # noqa: E402
from keras_compress import export  # noqa: E402
from keras_compress import runtime  # noqa: E402
