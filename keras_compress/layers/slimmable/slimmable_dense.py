"""`SlimmableDense`: a `keras.layers.Dense` that runs at several widths."""

import keras
from keras import ops

from keras_compress.layers.slimmable.base_slimmable import DEFAULT_WIDTHS
from keras_compress.layers.slimmable.base_slimmable import SlimmableLayer


@keras.saving.register_keras_serializable(package="keras_compress")
class SlimmableDense(SlimmableLayer, keras.layers.Dense):
    """`Dense` that can run with only its first units (a slimmable layer).

    A drop-in for `keras.layers.Dense`: every Dense argument with the same
    default, plus the widths. The layer holds the full-width kernel. At the
    active width `w` (see `keras_compress.slimmable.set_width`) it uses the
    first `active_channels(units, w)` units, where
    `active_channels(n, w) = max(1, floor(w * n + 0.5))`, and, with
    `slim_input=True`, only the first `active_channels(input_dim, w)`
    features of its input (those the previous slimmable layer produced).

    Output shapes do not depend on the width: the output always has `units`
    features and those past the active ones are zeros (after the
    activation); input features past the active ones are multiplied by 0.
    A classifier keeps all its outputs with `slim_output=False`.
    `keras_compress.slimmable.export_width(model, w)` turns a width into a
    plain, really smaller `Dense`.

    Args:
        units, activation, use_bias, kernel_initializer, bias_initializer,
        kernel_regularizer, bias_regularizer, activity_regularizer,
        kernel_constraint, bias_constraint, lora_rank, lora_alpha: as in
            `keras.layers.Dense`.
        quantization_config: Keras's own quantization; must stay None
            (export a width with `export_width` and quantize that model).
        width_multipliers: The widths the layer can run at, default
            `(0.25, 0.5, 0.75, 1.0)`: distinct numbers in (0, 1] that
            contain 1.0, sorted by the layer.
        slim_input: Use only the first input features at a width, default
            True. Set it to False on a first layer whose input always keeps
            all its features.
        slim_output: Use only the first units at a width, default True. Set
            it to False on the classifier.
        **kwargs: Base layer arguments.

    Input shape:
        N-D tensor `(batch_size, ..., input_dim)`.

    Output shape:
        N-D tensor `(batch_size, ..., units)`, at every width.

    Example:

    >>> import numpy as np
    >>> layer = SlimmableDense(10, slim_output=False,
    ...                        width_multipliers=(0.5, 1.0))
    >>> y = layer(np.ones((2, 8), "float32"))
    >>> layer.set_width(0.5)  # now reads only the first 4 input features
    >>> y = layer(np.ones((2, 8), "float32"))

    Reference:
        - [Yu et al., Slimmable Neural Networks, ICLR 2019](
          https://arxiv.org/abs/1812.08928)
        - [Yu & Huang, Universally Slimmable Networks and Improved Training
          Techniques, ICCV 2019](https://arxiv.org/abs/1903.05134)
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
        width_multipliers=DEFAULT_WIDTHS,
        slim_input=True,
        slim_output=True,
        **kwargs,
    ):
        if quantization_config is not None:
            raise ValueError(
                f"{type(self).__name__} cannot be quantized by Keras. "
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
        self._init_slim(width_multipliers, slim_input, slim_output)

    def build(self, input_shape):
        # Before the parent's build, which locks the layer's variables when
        # it enables LoRA.
        self._build_slim()
        super().build(input_shape)

    def call(self, inputs, training=None):
        x = inputs
        if self.slim_input:
            x = ops.multiply(x, self._channel_mask(x.shape[-1], x.dtype))
        y = super().call(x, training=training)
        if self.slim_output:
            y = ops.multiply(y, self._channel_mask(self.units, y.dtype))
        return y

    def get_config(self):
        return {**super().get_config(), **self._slim_config()}
