"""Shared fixtures: offline data and a small trained CNN with its exports."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from keras_compress import datasets  # noqa: E402
from keras_compress import demo  # noqa: E402
from keras_compress import export  # noqa: E402


@pytest.fixture(scope="session")
def digits():
    """`(x_train, y_train), (x_test, y_test)`: the 8x8 digits."""
    return datasets.load_digits()


@pytest.fixture(scope="session")
def cnn(digits):
    """The demo CNN (Conv2D, BatchNorm, DepthwiseConv2D, residual Add,
    pooling, Dense) trained briefly on 8x8 digits."""
    (x_train, y_train), _ = digits
    keras.utils.set_random_seed(1)
    model = demo.build_cnn(input_shape=(8, 8, 1))
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(x_train, y_train, epochs=12, batch_size=64, verbose=0)
    return model


@pytest.fixture(scope="session")
def cnn_float(cnn):
    return export.to_tflite(cnn)


@pytest.fixture(scope="session")
def cnn_int8(cnn, digits):
    """Full-int8 with int8 inputs and outputs and batch size 1 (micro-ready)."""
    (x_train, _), _ = digits
    return export.to_tflite(
        cnn, quantize="int8", representative_data=x_train[:200], int8_io=True,
        batch_size=1,
    )


@pytest.fixture
def rng():
    return np.random.default_rng(0)
