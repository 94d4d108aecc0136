"""Verified exports: LiteRT/TFLite, TensorFlow Lite Micro bundles, ONNX.

Every writer runs what it wrote in the target runtime before returning, and
writes files atomically: a failed export leaves no partial file.
"""

from keras_compress.export.lean import lean_tflite
from keras_compress.export.micro import to_micro
from keras_compress.export.onnx import to_onnx
from keras_compress.export.tflite import to_tflite
