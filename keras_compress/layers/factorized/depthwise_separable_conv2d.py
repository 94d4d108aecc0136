"""`DepthwiseSeparableConv2D`: depthwise conv, BN, activation, 1x1 conv, BN,
activation, as one layer."""

import keras

from keras_compress.layers.quantized.base_quant import check_batch_norm

_L = keras.layers


@keras.saving.register_keras_serializable(package="keras_compress")
class DepthwiseSeparableConv2D(keras.layers.Layer):
    """A depthwise-separable 2D convolution block as one layer.

    Computes, in this order: a depthwise `k x k` convolution (each input
    channel filtered by `depth_multiplier` filters of its own), an optional
    `BatchNormalization`, an optional `depthwise_activation`, a pointwise
    `1 x 1` convolution to `filters` channels, an optional
    `BatchNormalization` and `activation`. This is the block MobileNets are
    built from. Unlike `keras.layers.SeparableConv2D`, it can normalize and
    apply a nonlinearity between the two convolutions.

    With `I` input channels, `O = filters`, a `k x k` kernel and
    `m = depth_multiplier`, the layer holds `k*k*I*m + I*m*O` weights (plus
    `O` biases with `use_bias`, `I*m` with `depthwise_use_bias`, and 4
    values per channel of each BatchNormalization) where a standard
    convolution holds `k*k*I*O`: a ratio of `1/O + 1/k^2` for `m = 1`. Per
    output position it costs `k*k*I*m + I*m*O` multiply-accumulates instead
    of `k*k*I*O`.

    The sublayers are built inside the layer and are saved and loaded with
    it: `depthwise` (`keras.layers.DepthwiseConv2D`), `depthwise_bn`,
    `pointwise` (`keras.layers.Conv2D` with a `1 x 1` kernel) and
    `pointwise_bn` (`keras.layers.BatchNormalization`, or None without
    `batch_norm`).

    Args:
        filters: Number of output channels (of the pointwise convolution).
        kernel_size: Int or tuple of 2 ints, size of the depthwise kernel.
        strides: Int or tuple of 2 ints, strides of the depthwise
            convolution. Defaults to `(1, 1)`.
        padding: `"valid"` or `"same"`, padding of the depthwise
            convolution. Defaults to `"valid"`.
        data_format: `"channels_last"` or `"channels_first"`. Defaults to
            None (Keras's `image_data_format`).
        dilation_rate: Int or tuple of 2 ints, dilation of the depthwise
            kernel. Defaults to `(1, 1)`.
        depth_multiplier: Depthwise filters per input channel. Defaults to
            1.
        activation: Activation after the pointwise convolution (and its
            BatchNormalization). Defaults to None (linear).
        use_bias: Whether the pointwise convolution has a bias (as in
            `SeparableConv2D`). Defaults to True. Set it to False with
            `batch_norm`, whose offset makes the bias redundant.
        depthwise_initializer: Initializer of the depthwise kernel.
            Defaults to `"glorot_uniform"`.
        pointwise_initializer: Initializer of the pointwise kernel.
            Defaults to `"glorot_uniform"`.
        bias_initializer: Initializer of the biases. Defaults to `"zeros"`.
        depthwise_regularizer: Regularizer of the depthwise kernel.
            Defaults to None.
        pointwise_regularizer: Regularizer of the pointwise kernel.
            Defaults to None.
        bias_regularizer: Regularizer of the biases. Defaults to None.
        activity_regularizer: Regularizer of the output. Defaults to None.
        depthwise_constraint: Constraint of the depthwise kernel. Defaults
            to None.
        pointwise_constraint: Constraint of the pointwise kernel. Defaults
            to None.
        bias_constraint: Constraint of the biases. Defaults to None.
        depthwise_activation: Activation between the two convolutions
            (after the depthwise BatchNormalization). Defaults to None.
        batch_norm: False (default), True, or a dict with `momentum` and
            `epsilon` (defaults 0.99 and 1e-3): add a BatchNormalization
            after each convolution.
        depthwise_use_bias: Whether the depthwise convolution has a bias.
            Defaults to False.
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
    >>> layer = DepthwiseSeparableConv2D(
    ...     16, 3, padding="same", batch_norm=True, use_bias=False,
    ...     depthwise_activation="relu", activation="relu")
    >>> tuple(layer(np.ones((1, 8, 8, 4), "float32")).shape)
    (1, 8, 8, 16)

    Reference:
        - [Howard et al., MobileNets: Efficient Convolutional Neural
          Networks for Mobile Vision Applications, 2017](
          https://arxiv.org/abs/1704.04861)
        - [Chollet, Xception: Deep Learning with Depthwise Separable
          Convolutions, CVPR 2017](https://arxiv.org/abs/1610.02357)
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=(1, 1),
        padding="valid",
        data_format=None,
        dilation_rate=(1, 1),
        depth_multiplier=1,
        activation=None,
        use_bias=True,
        depthwise_initializer="glorot_uniform",
        pointwise_initializer="glorot_uniform",
        bias_initializer="zeros",
        depthwise_regularizer=None,
        pointwise_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        depthwise_constraint=None,
        pointwise_constraint=None,
        bias_constraint=None,
        depthwise_activation=None,
        batch_norm=False,
        depthwise_use_bias=False,
        **kwargs,
    ):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        for name, value in (("filters", filters),
                            ("depth_multiplier", depth_multiplier)):
            if (isinstance(value, bool) or not isinstance(value, int)
                    or value < 1):
                raise ValueError(
                    f"Layer {self.name!r}: expected `{name}` to be an integer "
                    f">= 1. Received: {name}={value!r}"
                )
        self._batch_norm = check_batch_norm(batch_norm)
        self.activation = keras.activations.get(activation)
        self.depthwise_activation = keras.activations.get(depthwise_activation)
        self.use_bias = bool(use_bias)
        self.depthwise_use_bias = bool(depthwise_use_bias)

        self.depthwise = _L.DepthwiseConv2D(
            kernel_size,
            strides=strides,
            padding=padding,
            depth_multiplier=depth_multiplier,
            data_format=data_format,
            dilation_rate=dilation_rate,
            use_bias=self.depthwise_use_bias,
            depthwise_initializer=depthwise_initializer,
            bias_initializer=bias_initializer,
            depthwise_regularizer=depthwise_regularizer,
            bias_regularizer=bias_regularizer,
            depthwise_constraint=depthwise_constraint,
            bias_constraint=bias_constraint,
            dtype=self.dtype_policy,
            name="depthwise",
        )
        self.depthwise_bn = self._make_bn("depthwise_bn")
        self.pointwise = _L.Conv2D(
            filters,
            1,
            data_format=data_format,
            use_bias=self.use_bias,
            kernel_initializer=pointwise_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=pointwise_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=pointwise_constraint,
            bias_constraint=bias_constraint,
            dtype=self.dtype_policy,
            name="pointwise",
        )
        self.pointwise_bn = self._make_bn("pointwise_bn")
        self.filters = filters
        self.depth_multiplier = depth_multiplier
        self.kernel_size = self.depthwise.kernel_size
        self.strides = self.depthwise.strides
        self.padding = self.depthwise.padding
        self.data_format = self.depthwise.data_format
        self.dilation_rate = self.depthwise.dilation_rate
        self.input_spec = keras.InputSpec(min_ndim=4, max_ndim=4)

    def _make_bn(self, name):
        if self._batch_norm is None:
            return None
        axis = -1 if self.depthwise.data_format == "channels_last" else 1
        return _L.BatchNormalization(
            axis=axis,
            momentum=self._batch_norm["momentum"],
            epsilon=self._batch_norm["epsilon"],
            dtype=self.dtype_policy,
            name=name,
        )

    @property
    def batch_norm(self):
        """The BatchNormalization settings as a dict, or False."""
        return False if self._batch_norm is None else dict(self._batch_norm)

    def _channels(self, shape):
        return shape[-1] if self.data_format == "channels_last" else shape[1]

    def build(self, input_shape):
        if self._channels(input_shape) is None:
            raise ValueError(
                f"Layer {self.name!r}: expected the channel dimension of the "
                f"input to be defined. Received: input_shape={input_shape}"
            )
        self.depthwise.build(input_shape)
        shape = self.depthwise.compute_output_shape(input_shape)
        if self.depthwise_bn is not None:
            self.depthwise_bn.build(shape)
        self.pointwise.build(shape)
        if self.pointwise_bn is not None:
            self.pointwise_bn.build(self.pointwise.compute_output_shape(shape))

    def call(self, inputs, training=None):
        x = self.depthwise(inputs)
        if self.depthwise_bn is not None:
            x = self.depthwise_bn(x, training=training)
        x = self.depthwise_activation(x)
        x = self.pointwise(x)
        if self.pointwise_bn is not None:
            x = self.pointwise_bn(x, training=training)
        return self.activation(x)

    def compute_output_shape(self, input_shape):
        shape = self.depthwise.compute_output_shape(input_shape)
        return self.pointwise.compute_output_shape(shape)

    def get_config(self):
        ser = keras.saving.serialize_keras_object
        d, p = self.depthwise, self.pointwise
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
            "depth_multiplier": self.depth_multiplier,
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "depthwise_initializer": ser(d.depthwise_initializer),
            "pointwise_initializer": ser(p.kernel_initializer),
            "bias_initializer": ser(p.bias_initializer),
            "depthwise_regularizer": ser(d.depthwise_regularizer),
            "pointwise_regularizer": ser(p.kernel_regularizer),
            "bias_regularizer": ser(p.bias_regularizer),
            "activity_regularizer": ser(self.activity_regularizer),
            "depthwise_constraint": ser(d.depthwise_constraint),
            "pointwise_constraint": ser(p.kernel_constraint),
            "bias_constraint": ser(p.bias_constraint),
            "depthwise_activation": keras.activations.serialize(
                self.depthwise_activation),
            "batch_norm": self.batch_norm,
            "depthwise_use_bias": self.depthwise_use_bias,
        }
