"""Run and time exported artifacts in their real runtimes.

`LiteRTModel` (LiteRT with XNNPACK, the phone runtime), `MicroModel`
(TensorFlow Lite Micro, the microcontroller runtime) and `ONNXModel`
(ONNX Runtime) share one interface: `predict(x)` on any number of samples,
`evaluate(x, y)` for top-1 accuracy, and `size_bytes`.
"""

from keras_compress.runtime.litert import LiteRTModel
from keras_compress.runtime.micro import MicroModel
from keras_compress.runtime.onnx import ONNXModel
from keras_compress.runtime.early_exit import EarlyExitRunner
