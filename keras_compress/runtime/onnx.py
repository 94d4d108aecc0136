"""Run an ONNX model in ONNX Runtime (CPU)."""

import os

import numpy as np

from keras_compress.runtime import _common

_DEFAULT_BATCH = 256

_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
}


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as e:
        raise ImportError(
            "ONNX support needs onnxruntime: pip install 'keras-compress[onnx]'"
        ) from e
    return onnxruntime


class ONNXModel:
    """An ONNX model loaded in ONNX Runtime's CPU execution provider.

    Args:
        model: ONNX bytes or a path to a `.onnx` file.
        num_threads: Intra-op threads, default None (ONNX Runtime's default).

    Example:

    >>> runner = ONNXModel("model.onnx")
    >>> runner.evaluate(x_test, y_test)
    0.97
    """

    def __init__(self, model, num_threads=None):
        ort = import_onnxruntime()
        if isinstance(model, (str, os.PathLike)):
            if not os.path.isfile(model):
                raise ValueError(
                    "Expected `model` to be ONNX bytes or the path of an "
                    f"existing .onnx file. Received: model={os.fspath(model)!r}"
                )
            with open(model, "rb") as f:
                model = f.read()
        if not isinstance(model, (bytes, bytearray)):
            raise TypeError(
                "Expected `model` to be ONNX bytes or a path. "
                f"Received: model of type {type(model).__name__}"
            )
        options = ort.SessionOptions()
        if num_threads is not None:
            options.intra_op_num_threads = int(num_threads)
        try:
            self._session = ort.InferenceSession(
                bytes(model), options, providers=["CPUExecutionProvider"]
            )
        except Exception as e:
            raise ValueError(
                f"`model` is not a valid ONNX model: {e}. Received: "
                f"{len(model)} bytes"
            ) from None
        self._size = len(model)
        self.inputs = [_info(i) for i in self._session.get_inputs()]
        self.outputs = [_info(o) for o in self._session.get_outputs()]

    @property
    def size_bytes(self):
        """Size of the ONNX model in bytes."""
        return self._size

    def predict(self, x, batch_size=_DEFAULT_BATCH):
        """Runs the model on all samples of `x` in batches of `batch_size`."""
        arrays = _common.as_input_list(x, self.inputs)
        fixed = self.inputs[0].shape[0]
        batch = fixed or batch_size

        def run(chunk):
            if fixed:
                chunk = _common.pad_to(chunk, fixed)
            feed = {
                info.name: a.astype(info.dtype, copy=False)
                for info, a in zip(self.inputs, chunk)
            }
            return self._session.run(None, feed)

        return _common.run_in_batches(run, arrays, batch)

    def evaluate(self, x, y, batch_size=_DEFAULT_BATCH):
        """Top-1 accuracy of the model on `(x, y)`."""
        return _common.accuracy(self.predict(x, batch_size=batch_size), y)


def _info(node):
    shape = tuple(d if isinstance(d, int) else None for d in node.shape)
    return _common.TensorInfo(
        name=node.name, shape=shape, dtype=np.dtype(_ORT_TYPES.get(node.type, np.float32))
    )
