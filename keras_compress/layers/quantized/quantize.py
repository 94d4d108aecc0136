"""`Quantize`: a layer that fake-quantizes the tensor passing through it."""

import keras

from keras_compress import quantizers as quantizers_lib


@keras.saving.register_keras_serializable(package="keras_compress")
class Quantize(keras.layers.Layer):
    """Quantizes activations where the int8 model will requantize them.

    `quantize_model` places one of these on each model input and after each
    op whose int8 kernel writes a new scale (convolutions and dense layers
    with their activation, residual adds, concatenations, averages). With
    the default quantizer (8-bit, asymmetric, range tracked by a moving
    average in training) the TFLite converter reads the learned range and
    needs no calibration data.

    Args:
        quantizer: A quantizer, its name or config. Default `"fake_quant"`
            (`FakeQuant(bits=8, range_mode="ema")`).
        **kwargs: Base layer arguments.

    Input shape:
        Any.

    Output shape:
        Same as the input.

    Example:

    >>> import numpy as np
    >>> layer = Quantize()
    >>> y = layer(np.linspace(-1, 1, 8).reshape(2, 4).astype("float32"))
    """

    def __init__(self, quantizer="fake_quant", **kwargs):
        super().__init__(**kwargs)
        if quantizer is None:
            raise ValueError(
                "Expected `quantizer` to be a quantizer, its name or config. "
                "Received: quantizer=None"
            )
        self.quantizer = quantizers_lib.get(quantizer)

    def build(self, input_shape):
        self.quantizer.build(self, input_shape, "quantizer")

    def call(self, inputs, training=None):
        return self.quantizer(inputs, training=bool(training))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "quantizer": quantizers_lib.serialize(self.quantizer),
        }
