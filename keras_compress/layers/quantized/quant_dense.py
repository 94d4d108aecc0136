"""`QuantDense`: a quantization-aware `keras.layers.Dense`."""

import keras
from keras import ops

from keras_compress.layers.quantized.base_quant import QuantLayer


@keras.saving.register_keras_serializable(package="keras_compress")
class QuantDense(QuantLayer, keras.layers.Dense):
    """`Dense` that computes with quantized weights (and inputs, outputs).

    A drop-in for `keras.layers.Dense`: every Dense argument with the same
    default, plus the quantizers. By default the kernel is fake-quantized
    the way TFLite stores int8 fully connected weights (8 bits, symmetric,
    narrow range, one range for the whole kernel), so a model built from
    these layers trains on the weights its int8 export will hold. Use
    `keras_compress.quantizers` objects or names for low-bit training.

    Args:
        units, activation, use_bias, kernel_initializer, bias_initializer,
        kernel_regularizer, bias_regularizer, activity_regularizer,
        kernel_constraint, bias_constraint, lora_rank, lora_alpha: as in
            `keras.layers.Dense`.
        quantization_config: Keras's own post-training quantization; must
            stay None (this layer quantizes with its quantizers).
        kernel_quantizer: Quantizer of the kernel: `"default"` (int8
            per-tensor, as TFLite's fully connected kernels), `None` (float),
            a name such as `"ste_sign"`, or a `Quantizer`. Per-channel int8
            (`FakeQuant(axis=-1)`) trains, but the TFLite converter cannot
            turn it into an int8 fully connected op.
        input_quantizer: Quantizer of the input, default None.
        output_quantizer: Quantizer of the output after the activation,
            default None (`quantize_model` places separate `Quantize` layers
            instead).
        batch_norm: None (default), True or a dict with `momentum` and
            `epsilon`: fold a BatchNormalization of the output into the
            kernel while training (see `QuantLayer`).
        **kwargs: Base layer arguments.

    Input shape:
        N-D tensor `(batch_size, ..., input_dim)`.

    Output shape:
        N-D tensor `(batch_size, ..., units)`.

    Example:

    >>> import numpy as np
    >>> layer = QuantDense(4, activation="relu")
    >>> y = layer(np.ones((2, 8), "float32"))
    """

    _default_per_channel = False

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
        kernel_quantizer="default",
        input_quantizer=None,
        output_quantizer=None,
        batch_norm=None,
        **kwargs,
    ):
        if quantization_config is not None:
            raise ValueError(
                f"{type(self).__name__} quantizes with its own quantizers. "
                "Expected quantization_config=None. Received: "
                f"quantization_config={quantization_config!r}"
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
            lora_rank=lora_rank,
            lora_alpha=lora_alpha,
            **kwargs,
        )
        self._init_quant(kernel_quantizer, input_quantizer, output_quantizer,
                         batch_norm)

    def _apply(self, x, kernel):
        return ops.matmul(x, kernel)
