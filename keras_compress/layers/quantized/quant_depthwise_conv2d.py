"""`QuantDepthwiseConv2D`: a quantization-aware `keras.layers.DepthwiseConv2D`."""

import keras
from keras import ops

from keras_compress.layers.quantized.base_quant import QuantLayer


@keras.saving.register_keras_serializable(package="keras_compress")
class QuantDepthwiseConv2D(QuantLayer, keras.layers.DepthwiseConv2D):
    """`DepthwiseConv2D` that computes with quantized weights.

    A drop-in for `keras.layers.DepthwiseConv2D`: every argument with the
    same default, plus the quantizers. The kernel quantizer sees the kernel
    as `(height, width, 1, channels * depth_multiplier)`, output channels
    last, which is how TFLite stores depthwise weights; by default it is
    int8, symmetric, narrow range, one range per output channel.

    Args:
        kernel_size, strides, padding, depth_multiplier, data_format,
        dilation_rate, activation, use_bias, depthwise_initializer,
        bias_initializer, depthwise_regularizer, bias_regularizer,
        activity_regularizer, depthwise_constraint, bias_constraint: as in
            `keras.layers.DepthwiseConv2D`.
        kernel_quantizer: `"default"` (int8 per output channel), `None`
            (float), a quantizer name or a `Quantizer`.
        input_quantizer: Quantizer of the input, default None.
        output_quantizer: Quantizer of the output after the activation,
            default None.
        batch_norm: None (default), True or a dict with `momentum` and
            `epsilon`: fold a BatchNormalization of the output into the
            kernel while training (see `QuantLayer`).
        **kwargs: Base layer arguments.

    Input shape:
        4D tensor `(batch_size, height, width, channels)` (channels_last).

    Output shape:
        4D tensor `(batch_size, new_height, new_width,
        channels * depth_multiplier)`.

    Example:

    >>> import numpy as np
    >>> layer = QuantDepthwiseConv2D(3, padding="same")
    >>> y = layer(np.ones((1, 6, 6, 4), "float32"))
    """

    def __init__(
        self,
        kernel_size,
        strides=(1, 1),
        padding="valid",
        depth_multiplier=1,
        data_format=None,
        dilation_rate=(1, 1),
        activation=None,
        use_bias=True,
        depthwise_initializer="glorot_uniform",
        bias_initializer="zeros",
        depthwise_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        depthwise_constraint=None,
        bias_constraint=None,
        kernel_quantizer="default",
        input_quantizer=None,
        output_quantizer=None,
        batch_norm=None,
        **kwargs,
    ):
        super().__init__(
            kernel_size,
            strides=strides,
            padding=padding,
            depth_multiplier=depth_multiplier,
            data_format=data_format,
            dilation_rate=dilation_rate,
            activation=activation,
            use_bias=use_bias,
            depthwise_initializer=depthwise_initializer,
            bias_initializer=bias_initializer,
            depthwise_regularizer=depthwise_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            depthwise_constraint=depthwise_constraint,
            bias_constraint=bias_constraint,
            **kwargs,
        )
        self._init_quant(kernel_quantizer, input_quantizer, output_quantizer,
                         batch_norm)

    def _kernel_view(self, kernel):
        h, w, c, m = kernel.shape
        return ops.reshape(kernel, (h, w, 1, c * m))

    def _kernel_unview(self, kernel):
        return ops.reshape(kernel, tuple(self.kernel.shape))

    def _apply(self, x, kernel):
        return ops.depthwise_conv(
            x,
            kernel,
            strides=self.strides,
            padding=self.padding,
            dilation_rate=self.dilation_rate,
            data_format=self.data_format,
        )
