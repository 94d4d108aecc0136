"""`BinaryDense`: a dense layer with binary weights (BinaryConnect, BWN, XNOR)."""

import keras

from keras_compress._checks import check_parent_default
from keras_compress.layers.quantized import _binary
from keras_compress.layers.quantized.quant_dense import QuantDense


@keras.saving.register_keras_serializable(package="keras_compress")
class BinaryDense(QuantDense):
    """`Dense` whose weights are binarized to `+-alpha` in every call.

    Real-valued latent weights are kept and trained; the forward pass uses
    `sign(w)` scaled by `alpha = mean(|w|)` of each output channel (BWN /
    XNOR-Net scaling; `scale=None` keeps plain +-1 as BinaryConnect), and
    the gradient passes straight through where `|w| <= 1`. With
    `binarize_inputs=True` the inputs are binarized too (XNOR-Net style).

    The layer exports through TFLite's standard int8 kernels, so it runs in
    every runtime: each output channel's int8 weights take exactly two
    values. (Fully connected int8 weights share one scale per tensor in
    TFLite, so each channel's `alpha` is rounded to that grid, and the
    layer trains on the rounded values.)

    Args:
        units, activation, use_bias, kernel_initializer, bias_initializer,
        kernel_regularizer, bias_regularizer, activity_regularizer,
        kernel_constraint, bias_constraint: as in `keras.layers.Dense`.
        lora_rank, lora_alpha, quantization_config: Keras's `Dense`
            arguments; must stay None (the latent kernel is clipped by a
            constraint, which LoRA refuses, and the layer quantizes itself).
        scale: `"channel"` (default: alpha per output channel), `"tensor"`
            (one alpha) or None (+-1).
        binarize_inputs: Also binarize the inputs to +-1, default False.
        latent_clip: Clip of the latent weights after each update, default
            1.0; None removes it (with a warning).
        output_quantizer: Quantizer of the output, default None.
        batch_norm: Fused batch norm settings, default None (see
            `QuantDense`).
        **kwargs: Base layer arguments.

    Input shape:
        N-D tensor `(batch_size, ..., input_dim)`.

    Output shape:
        N-D tensor `(batch_size, ..., units)`.

    Example:

    >>> import numpy as np
    >>> layer = BinaryDense(4)
    >>> y = layer(np.ones((2, 8), "float32"))

    Reference:
        Courbariaux et al., "BinaryConnect", NeurIPS 2015; Rastegari et al.,
        "XNOR-Net", ECCV 2016.
    """

    def __init__(
        self,
        units,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        lora_rank=None,
        lora_alpha=None,
        quantization_config=None,
        scale="channel",
        binarize_inputs=False,
        latent_clip=1.0,
        output_quantizer=None,
        batch_norm=None,
        **kwargs,
    ):
        check_parent_default(
            type(self).__name__, "lora_rank", lora_rank, None,
            "clips its latent kernel with a constraint, and Keras's LoRA "
            "refuses kernel constraints")
        check_parent_default(type(self).__name__, "lora_alpha", lora_alpha, None,
                             "has no LoRA (see lora_rank)")
        kernel_quantizer, input_quantizer, kernel_constraint = (
            _binary.binary_arguments(
                type(self).__name__, scale, binarize_inputs, latent_clip,
                kernel_constraint,
            )
        )
        super().__init__(
            units,
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
            quantization_config=quantization_config,
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
