"""`LowRankConv2D`: a `k x k` convolution to `rank` channels followed by a
`1 x 1` convolution to `filters` channels."""

import keras

from keras_compress._checks import check_parent_default
from keras_compress.layers.factorized._rank import check_positive
from keras_compress.layers.factorized._rank import check_rank_range

_L = keras.layers


@keras.saving.register_keras_serializable(package="keras_compress")
class LowRankConv2D(keras.layers.Layer):
    """`Conv2D` with a rank-`r` kernel: a `k x k` conv to `rank` channels,
    then a `1 x 1` conv to `filters`.

    Viewing the `k x k x I x O` kernel of a convolution as a
    `(k*k*I) x O` matrix, this layer constrains it to rank `r`: a first
    convolution `u` (`k x k`, `I -> rank` channels, no bias) and a second
    `v` (`1 x 1`, `rank -> filters`, with the bias). It holds
    `k*k*I*r + r*O` weights (plus `O` biases) instead of `k*k*I*O`, and
    costs as many multiply-accumulates per output position.

    The sublayers `u` and `v` are `keras.layers.Conv2D` layers, saved and
    loaded with this layer; they export to TFLite as two `CONV_2D`
    operators.

    Args:
        filters: Number of output channels.
        kernel_size: Int or tuple of 2 ints, size of the `k x k` kernel.
        rank: Channels between the two convolutions, an integer in
            `[1, min(k*k*input_channels, filters)]` (checked when the layer
            is built).
        strides: Int or tuple of 2 ints. Defaults to `(1, 1)`.
        padding: `"valid"` or `"same"`. Defaults to `"valid"`.
        data_format: `"channels_last"` or `"channels_first"`. Defaults to
            None (Keras's `image_data_format`).
        dilation_rate: Int or tuple of 2 ints. Defaults to `(1, 1)`.
        activation: Activation function. Defaults to None (linear).
        use_bias: Whether the layer adds a bias. Defaults to True.
        kernel_initializer: Initializer of both kernels. Defaults to
            `"glorot_uniform"`.
        bias_initializer: Initializer of the bias. Defaults to `"zeros"`.
        kernel_regularizer: Regularizer applied to each kernel. Defaults to
            None.
        bias_regularizer: Regularizer of the bias. Defaults to None.
        activity_regularizer: Regularizer of the output. Defaults to None.
        kernel_constraint: Constraint applied to each kernel. Defaults to
            None.
        bias_constraint: Constraint of the bias. Defaults to None.
        groups: Keras's `Conv2D` argument, accepted for parity; must stay 1.
        **kwargs: Base layer arguments (`name`, `dtype`, `trainable`).

    Input shape:
        4D tensor `(batch_size, rows, cols, channels)` with
        `channels_last`, `(batch_size, channels, rows, cols)` with
        `channels_first`.

    Output shape:
        4D tensor `(batch_size, new_rows, new_cols, filters)` with
        `channels_last`, `(batch_size, filters, new_rows, new_cols)` with
        `channels_first`.

    Example:

    >>> import numpy as np
    >>> layer = LowRankConv2D(32, 3, rank=8, padding="same")
    >>> tuple(layer(np.ones((1, 8, 8, 16), "float32")).shape)
    (1, 8, 8, 32)

    Reference:
        - [Jaderberg et al., Speeding up Convolutional Neural Networks with
          Low Rank Expansions, BMVC 2014](https://arxiv.org/abs/1405.3866)
        - [Zhang et al., Accelerating Very Deep Convolutional Networks for
          Classification and Detection, TPAMI 2016](
          https://arxiv.org/abs/1505.06798)
    """

    def __init__(
        self,
        filters,
        kernel_size,
        rank,
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
        **kwargs,
    ):
        check_parent_default(type(self).__name__, "groups", groups, 1,
                             "factors a dense convolution; grouped convolutions "
                             "are not factored")
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        check_positive(self, "filters", filters)
        check_positive(self, "rank", rank)
        self.filters = filters
        self.rank = rank
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.u = _L.Conv2D(
            rank,
            kernel_size,
            strides=strides,
            padding=padding,
            data_format=data_format,
            dilation_rate=dilation_rate,
            use_bias=False,
            kernel_initializer=kernel_initializer,
            kernel_regularizer=kernel_regularizer,
            kernel_constraint=kernel_constraint,
            dtype=self.dtype_policy,
            name="u",
        )
        self.v = _L.Conv2D(
            filters,
            1,
            data_format=data_format,
            use_bias=self.use_bias,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
            dtype=self.dtype_policy,
            name="v",
        )
        self.kernel_size = self.u.kernel_size
        self.strides = self.u.strides
        self.padding = self.u.padding
        self.data_format = self.u.data_format
        self.dilation_rate = self.u.dilation_rate
        self.input_spec = keras.InputSpec(min_ndim=4, max_ndim=4)

    def build(self, input_shape):
        channels = (input_shape[-1] if self.data_format == "channels_last"
                    else input_shape[1])
        if channels is None:
            raise ValueError(
                f"Layer {self.name!r}: expected the channel dimension of the "
                f"input to be defined. Received: input_shape={input_shape}"
            )
        kh, kw = self.kernel_size
        check_rank_range(
            self, self.rank, min(kh * kw * channels, self.filters),
            f"min(kernel height * width * input channels = "
            f"{kh * kw * channels}, filters={self.filters})",
        )
        self.u.build(input_shape)
        self.v.build(self.u.compute_output_shape(input_shape))

    def call(self, inputs):
        return self.activation(self.v(self.u(inputs)))

    def compute_output_shape(self, input_shape):
        return self.v.compute_output_shape(self.u.compute_output_shape(input_shape))

    def get_config(self):
        ser = keras.saving.serialize_keras_object
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "rank": self.rank,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": ser(self.u.kernel_initializer),
            "bias_initializer": ser(self.v.bias_initializer),
            "kernel_regularizer": ser(self.u.kernel_regularizer),
            "bias_regularizer": ser(self.v.bias_regularizer),
            "activity_regularizer": ser(self.activity_regularizer),
            "kernel_constraint": ser(self.u.kernel_constraint),
            "bias_constraint": ser(self.v.bias_constraint),
        }
