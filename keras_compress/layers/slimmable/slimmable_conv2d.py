"""`SlimmableConv2D`: a `keras.layers.Conv2D` that runs at several widths."""

import keras
from keras import ops

from keras_compress.layers.slimmable.base_slimmable import DEFAULT_WIDTHS
from keras_compress.layers.slimmable.base_slimmable import SlimmableLayer


@keras.saving.register_keras_serializable(package="keras_compress")
class SlimmableConv2D(SlimmableLayer, keras.layers.Conv2D):
    """`Conv2D` that can run with only its first filters (a slimmable layer).

    A drop-in for `keras.layers.Conv2D`: every Conv2D argument with the same
    default, plus the widths. The layer holds the full-width kernel. At the
    active width `w` (see `keras_compress.slimmable.set_width`) it uses the
    first `active_channels(filters, w)` filters, where
    `active_channels(n, w) = max(1, floor(w * n + 0.5))`, and, with
    `slim_input=True`, only the first `active_channels(in_channels, w)`
    channels of its input (those the previous slimmable layer produced).

    Output shapes do not depend on the width: the output always has
    `filters` channels, and the channels past the active ones are zeros
    (after the activation). The input channels past the active ones are
    multiplied by 0 before the convolution. One graph thus serves every
    width, and `keras_compress.slimmable.export_width(model, w)` turns a
    width into a plain, really smaller `Conv2D`.

    Args:
        filters, kernel_size, strides, padding, data_format, dilation_rate,
        groups, activation, use_bias, kernel_initializer, bias_initializer,
        kernel_regularizer, bias_regularizer, activity_regularizer,
        kernel_constraint, bias_constraint: as in `keras.layers.Conv2D`
            (`groups` must be 1).
        width_multipliers: The widths the layer can run at, default
            `(0.25, 0.5, 0.75, 1.0)`: distinct numbers in (0, 1] that
            contain 1.0, sorted by the layer. All slimmable layers of a
            model should share them.
        slim_input: Use only the first input channels at a width, default
            True. Set it to False on the first layer of a network (whose
            input, e.g. an image, always keeps all its channels).
        slim_output: Use only the first filters at a width, default True.
        **kwargs: Base layer arguments.

    Input shape:
        4D tensor `(batch_size, height, width, channels)` (channels_last) or
        `(batch_size, channels, height, width)` (channels_first).

    Output shape:
        4D tensor `(batch_size, new_height, new_width, filters)` (or
        channels first), at every width.

    Example:

    >>> import numpy as np
    >>> layer = SlimmableConv2D(8, 3, width_multipliers=(0.5, 1.0),
    ...                         slim_input=False)
    >>> y = layer(np.ones((1, 6, 6, 3), "float32"))
    >>> layer.set_width(0.5)
    >>> y = np.asarray(layer(np.ones((1, 6, 6, 3), "float32")))
    >>> bool((y[..., 4:] == 0).all())
    True

    Reference:
        - [Yu et al., Slimmable Neural Networks, ICLR 2019](
          https://arxiv.org/abs/1812.08928)
        - [Yu & Huang, Universally Slimmable Networks and Improved Training
          Techniques, ICCV 2019](https://arxiv.org/abs/1903.05134)
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
        width_multipliers=DEFAULT_WIDTHS,
        slim_input=True,
        slim_output=True,
        **kwargs,
    ):
        super().__init__(
            filters=filters,
            kernel_size=kernel_size,
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
        if groups != 1:
            raise ValueError(
                f"Layer '{self.name}': slimming grouped convolutions is not "
                f"supported. Expected groups=1. Received: groups={groups!r}"
            )
        self._init_slim(width_multipliers, slim_input, slim_output)

    def build(self, input_shape):
        # Before the parent's build, which locks the layer's variables when
        # it enables LoRA.
        self._build_slim()
        super().build(input_shape)

    def _channel_axis(self):
        return -1 if self.data_format == "channels_last" else 1

    def _mask_along_channels(self, x, channels):
        mask = self._channel_mask(channels, x.dtype)
        if self.data_format != "channels_last":
            mask = ops.reshape(mask, (channels,) + (1,) * self.rank)
        return ops.multiply(x, mask)

    def call(self, inputs):
        x = inputs
        if self.slim_input:
            x = self._mask_along_channels(x, x.shape[self._channel_axis()])
        y = super().call(x)
        if self.slim_output:
            y = self._mask_along_channels(y, self.filters)
        return y

    def get_config(self):
        return {**super().get_config(), **self._slim_config()}
