"""to_onnx, checked in ONNX Runtime."""

import keras
import numpy as np
import pytest

from keras_compress import export
from keras_compress.runtime import ONNXModel

pytest.importorskip("tf2onnx")
pytest.importorskip("onnxruntime")


def test_cnn_matches_keras(cnn, digits, tmp_path):
    _, (x_test, y_test) = digits
    path = tmp_path / "cnn.onnx"
    data = export.to_onnx(cnn, path)
    assert path.read_bytes() == data
    runner = ONNXModel(path)
    np.testing.assert_allclose(runner.predict(x_test), cnn.predict(x_test, verbose=0),
                               rtol=0, atol=1e-4)
    assert runner.evaluate(x_test, y_test) == pytest.approx(
        cnn.evaluate(x_test, y_test, verbose=0)[1], abs=1e-6)


def test_sequential_and_subclassed(rng):
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv1D(4, 3, activation="relu")
            self.pool = keras.layers.GlobalAveragePooling1D()
            self.out = keras.layers.Dense(3)

        def call(self, x):
            return self.out(self.pool(self.conv(x)))

    x = rng.uniform(size=(6, 40, 1)).astype("float32")
    sub = Subclassed()
    sub(x)
    seq = keras.Sequential([keras.Input((40, 1)), keras.layers.Conv1D(4, 5),
                            keras.layers.Flatten(), keras.layers.Dense(2)])
    for model in (sub, seq):
        runner = ONNXModel(export.to_onnx(model))
        np.testing.assert_allclose(runner.predict(x), model.predict(x, verbose=0),
                                   rtol=0, atol=1e-4)


def test_bad_arguments(cnn, tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        export.to_onnx(cnn, tmp_path / "missing" / "m.onnx")
    with pytest.raises(ValueError, match="opset"):
        export.to_onnx(cnn, opset=99)
    with pytest.raises(ValueError, match="not a valid ONNX model"):
        ONNXModel(b"not an onnx model")
