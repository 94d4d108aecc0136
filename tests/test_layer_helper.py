"""The layer helper itself, on Keras layers our drop-ins will subclass."""

import keras
import pytest

from layer_test import run_layer_test


@pytest.mark.parametrize(
    "layer_cls, kwargs, input_shape, output_shape",
    [
        (keras.layers.Dense, {"units": 5}, (7,), (5,)),
        (keras.layers.Conv2D, {"filters": 4, "kernel_size": 3, "strides": 2,
                               "padding": "same"}, (8, 8, 3), (4, 4, 4)),
        (keras.layers.DepthwiseConv2D, {"kernel_size": 3, "depth_multiplier": 2},
         (6, 6, 3), (4, 4, 6)),
        (keras.layers.Conv1D, {"filters": 3, "kernel_size": 5}, (20, 2), (16, 3)),
    ],
)
def test_helper_passes_keras_layers(layer_cls, kwargs, input_shape, output_shape):
    run_layer_test(layer_cls, kwargs, input_shape, expected_output_shape=output_shape)


def test_helper_catches_a_wrong_output_shape():
    with pytest.raises(AssertionError, match="output shape"):
        run_layer_test(keras.layers.Dense, {"units": 5}, (7,),
                       expected_output_shape=(6,), exportable=False)


class _ForgetfulDense(keras.layers.Dense):
    """A layer whose config drops an argument: the helper must notice."""

    def get_config(self):
        config = super().get_config()
        config["units"] = 1
        return config


def test_helper_catches_a_broken_config():
    with pytest.raises(AssertionError, match="config round trip"):
        run_layer_test(_ForgetfulDense, {"units": 5}, (7,), exportable=False)
