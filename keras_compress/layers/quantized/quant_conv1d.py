"""`QuantConv1D`: a quantization-aware `keras.layers.Conv1D`."""

import keras
from keras import ops

from keras_compress.layers.quantized.base_quant import QuantLayer


@keras.saving.register_keras_serializable(package="keras_compress")
class QuantConv1D(QuantLayer, keras.layers.Conv1D):
    """`Conv1D` that computes with quantized weights (and inputs, outputs).

    A drop-in for `keras.layers.Conv1D`: every Conv1D argument with the same
    default, plus the quantizers. By default the kernel is fake-quantized as
    TFLite stores int8 convolution weights (8 bits, symmetric, narrow
    range, one range per output channel).

    Args:
        filters, kernel_size, strides, padding (including "causal"), data_format, dilation_rate,
        groups, activation, use_bias, kernel_initializer, bias_initializer,
        kernel_regularizer, bias_regularizer, activity_regularizer,
        kernel_constraint, bias_constraint: as in `keras.layers.Conv1D`.
        kernel_quantizer: `"default"` (int8 per output channel), `None`
            (float), a quantizer name or a `Quantizer`. It sees the kernel
            with output channels last.
        input_quantizer: Quantizer of the input, default None.
        output_quantizer: Quantizer of the output after the activation,
            default None.
        batch_norm: None (default), True or a dict with `momentum` and
            `epsilon`: fold a BatchNormalization of the output into the
            kernel while training (see `QuantLayer`).
        **kwargs: Base layer arguments.

    Input shape:
        3D tensor `(batch_size, steps, channels)` (channels_last).

    Output shape:
        3D tensor `(batch_size, new_steps, filters)`.

    Example:

    >>> import numpy as np
    >>> layer = QuantConv1D(8, 3, padding="same", activation="relu")
    >>> y = layer(np.ones((1, 6, 3), "float32"))
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        data_format=None,
        dilation_rate=1,
        groups=1,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        kernel_quantizer="default",
        input_quantizer=None,
        output_quantizer=None,
        batch_norm=None,
        **kwargs,
    ):
        super().__init__(
            filters,
            kernel_size,
            strides=strides,
            padding=padding,
            data_format=data_format,
            dilation_rate=dilation_rate,
            groups=groups,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
            **kwargs,
        )
        self._init_quant(kernel_quantizer, input_quantizer, output_quantizer,
                         batch_norm)

    # The convolution runs as a 2D one on a height-1 image, with the kernel
    # quantized in its 4D form: that is how TFLite runs Conv1D, and the
    # converter cannot move per-channel ranges through the reshape that
    # TensorFlow's own conv1d would insert after the quantizer.
    def _kernel_view(self, kernel):
        return kernel if len(kernel.shape) == 4 else ops.expand_dims(kernel, 0)

    def _apply(self, x, kernel):
        kernel = self._kernel_view(kernel)
        padding = self.padding
        if padding == "causal":
            x = ops.pad(x, self._compute_causal_padding())
            padding = "valid"
        axis = 1 if self.data_format == "channels_last" else 2
        y = ops.conv(
            ops.expand_dims(x, axis),
            kernel,
            strides=(1,) + tuple(self.strides),
            padding=padding,
            dilation_rate=(1,) + tuple(self.dilation_rate),
            data_format=self.data_format,
        )
        return ops.squeeze(y, axis)
