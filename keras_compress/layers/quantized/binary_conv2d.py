"""`BinaryConv2D`: a convolution with binary weights (BinaryConnect, BWN, XNOR)."""

import keras

from keras_compress.layers.quantized import _binary
from keras_compress.layers.quantized.quant_conv2d import QuantConv2D


@keras.saving.register_keras_serializable(package="keras_compress")
class BinaryConv2D(QuantConv2D):
    """`Conv2D` whose weights are binarized to `+-alpha` in every call.

    Real-valued latent weights are kept and trained; the forward pass uses
    `sign(w)` scaled by `alpha = mean(|w|)` of each output channel (BWN /
    XNOR-Net scaling; `scale=None` keeps plain +-1 as BinaryConnect), and
    the gradient passes straight through where `|w| <= 1`. With
    `binarize_inputs=True` the inputs are binarized too (XNOR-Net style).

    It exports through TFLite's standard int8 convolution (per-channel
    scales), so each output channel's int8 weights are exactly `+-127`.

    Args:
        filters, kernel_size, strides, padding, data_format, dilation_rate,
        groups, activation, use_bias, kernel_initializer, bias_initializer,
        kernel_regularizer, bias_regularizer, activity_regularizer,
        kernel_constraint, bias_constraint: as in `keras.layers.Conv2D`.
        scale: `"channel"` (default: alpha per output channel), `"tensor"`
            (one alpha) or None (+-1).
        binarize_inputs: Also binarize the inputs to +-1, default False.
        latent_clip: Clip of the latent weights after each update, default
            1.0; None removes it (with a warning).
        output_quantizer: Quantizer of the output, default None.
        batch_norm: Fused batch norm settings, default None (see
            `QuantConv2D`).
        **kwargs: Base layer arguments.

    Input shape:
        4D tensor `(batch_size, height, width, channels)`.

    Output shape:
        4D tensor `(batch_size, new_height, new_width, filters)`.

    Example:

    >>> import numpy as np
    >>> layer = BinaryConv2D(8, 3, padding="same")
    >>> y = layer(np.ones((1, 6, 6, 3), "float32"))

    Reference:
        Courbariaux et al., "BinaryConnect", NeurIPS 2015; Rastegari et al.,
        "XNOR-Net", ECCV 2016.
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=(1, 1),
        padding="valid",
        data_format=None,
        dilation_rate=(1, 1),
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
        scale="channel",
        binarize_inputs=False,
        latent_clip=1.0,
        output_quantizer=None,
        batch_norm=None,
        **kwargs,
    ):
        kernel_quantizer, input_quantizer, kernel_constraint = (
            _binary.binary_arguments(
                type(self).__name__, scale, binarize_inputs, latent_clip,
                kernel_constraint,
            )
        )
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
            kernel_quantizer=kernel_quantizer,
            input_quantizer=input_quantizer,
            output_quantizer=output_quantizer,
            batch_norm=batch_norm,
            **kwargs,
        )
        self.scale = scale
        self.binarize_inputs = bool(binarize_inputs)
        self.latent_clip = latent_clip

    def get_config(self):
        return _binary.binary_config(
            super().get_config(), self.scale, self.binarize_inputs,
            self.latent_clip,
        )
