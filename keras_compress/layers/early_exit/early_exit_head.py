"""`EarlyExitHead`: a small classifier on an intermediate feature map."""

import keras

_POOLING = ("avg", "max")
_ACTIVATIONS = (None, "softmax")


@keras.saving.register_keras_serializable(package="keras_compress")
class EarlyExitHead(keras.layers.Layer):
    """A side classifier ("early exit") attached to an intermediate tensor.

    Computes, in order: an optional 1x1 convolution to `filters` channels
    with `conv_activation` (a `Dense(filters)` on a vector input, which is
    the same map), pooling over the steps of a 1-D or the positions of a
    2-D feature map (global, or to a small grid of cells: see `grid`; a
    vector input is used as it is), an optional
    hidden `Dense(hidden_units)` with `hidden_activation`, optional dropout,
    and `Dense(num_classes)` giving logits (`activation=None`) or
    probabilities (`activation="softmax"`). Its sublayers are standard Keras
    layers, so `keras_compress.analysis.summarize` counts its MACs exactly
    and it converts to plain TFLite operators. Channels are last.

    Args:
        num_classes: Number of classes, an int >= 2.
        filters: Channels of the 1x1 convolution, or None (default: no
            convolution).
        hidden_units: Units of a hidden `Dense` after pooling, or None
            (default: none).
        activation: `None` (default: logits) or `"softmax"` (probabilities).
        conv_activation: Activation of the 1x1 convolution, default `"relu"`.
        hidden_activation: Activation of the hidden `Dense`, default `"relu"`.
        pooling: `"avg"` (default) or `"max"` pooling.
        grid: None (default: global pooling) or an int: pool to a `grid` x
            `grid` grid of positions (`grid` steps for a 1-D map), each the
            average (or max) of its cell, and flatten them, so the
            classifier still sees where in the input a feature was; early,
            shallow feature maps classify better that way.
        dropout: Dropout rate before the classifier, in [0, 1), default 0.
        kernel_initializer: Initializer of every kernel, default
            `"glorot_uniform"`.
        bias_initializer: Initializer of every bias, default `"zeros"`.
        kernel_regularizer: Regularizer of every kernel, default None.
        bias_regularizer: Regularizer of every bias, default None.
        **kwargs: Base layer arguments (`name`, `dtype`, ...).

    Input shape:
        `(batch, features)`, `(batch, steps, channels)` or
        `(batch, height, width, channels)`.

    Output shape:
        `(batch, num_classes)`.

    Example:

    >>> import numpy as np
    >>> head = EarlyExitHead(10, filters=16)
    >>> tuple(head(np.zeros((2, 8, 8, 32), "float32")).shape)
    (2, 10)

    Reference:
        Teerapittayanon, McDanel and Kung, "BranchyNet: Fast Inference via
        Early Exiting from Deep Neural Networks", ICPR 2016.
    """

    def __init__(
        self,
        num_classes,
        filters=None,
        hidden_units=None,
        activation=None,
        conv_activation="relu",
        hidden_activation="relu",
        pooling="avg",
        grid=None,
        dropout=0.0,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_classes = _positive_int("num_classes", num_classes, minimum=2)
        self.filters = None if filters is None else _positive_int("filters", filters)
        self.hidden_units = (
            None if hidden_units is None else _positive_int("hidden_units", hidden_units)
        )
        if activation not in _ACTIVATIONS:
            raise ValueError(
                f"Expected `activation` to be one of {list(_ACTIVATIONS)} "
                "(logits or probabilities). Received: "
                f"activation={activation!r}"
            )
        self.activation = activation
        self.conv_activation = keras.activations.get(conv_activation)
        self.hidden_activation = keras.activations.get(hidden_activation)
        if pooling not in _POOLING:
            raise ValueError(
                f"Expected `pooling` to be one of {list(_POOLING)}. "
                f"Received: pooling={pooling!r}"
            )
        self.pooling = pooling
        self.grid = None if grid is None else _positive_int("grid", grid)
        if (
            isinstance(dropout, bool)
            or not isinstance(dropout, (int, float))
            or not 0 <= dropout < 1
        ):
            raise ValueError(
                f"Expected `dropout` to be a float in [0, 1). "
                f"Received: dropout={dropout!r}"
            )
        self.dropout = float(dropout)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self.conv = None
        self.pool = None
        self.flatten = None
        self.hidden = None
        self.drop = None
        self.classifier = None

    def _dense_args(self):
        return dict(
            kernel_initializer=self.kernel_initializer,
            bias_initializer=self.bias_initializer,
            kernel_regularizer=self.kernel_regularizer,
            bias_regularizer=self.bias_regularizer,
            dtype=self.dtype_policy,
        )

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        rank = len(input_shape)
        if rank not in (2, 3, 4):
            raise ValueError(
                f"Layer {self.name!r} (EarlyExitHead) expected an input of "
                "rank 2 (batch, features), 3 (batch, steps, channels) or 4 "
                "(batch, height, width, channels). Received: "
                f"input_shape={input_shape}"
            )
        if input_shape[-1] is None:
            raise ValueError(
                f"Layer {self.name!r} (EarlyExitHead) expected a known last "
                f"(channel) dimension. Received: input_shape={input_shape}"
            )
        args = self._dense_args()
        shape = input_shape
        if self.filters is not None:
            if rank == 2:
                self.conv = keras.layers.Dense(
                    self.filters, activation=self.conv_activation, name="conv", **args
                )
            else:
                conv = keras.layers.Conv1D if rank == 3 else keras.layers.Conv2D
                self.conv = conv(
                    self.filters, 1, activation=self.conv_activation, name="conv", **args
                )
            self.conv.build(shape)
            shape = self.conv.compute_output_shape(shape)
        if rank > 2 and self.grid is not None:
            dims = shape[1:-1]
            if any(d is None for d in dims):
                raise ValueError(
                    f"Layer {self.name!r} (EarlyExitHead) with grid={self.grid} "
                    "expected known steps / height and width. Received: "
                    f"input_shape={input_shape}"
                )
            size = tuple(-(-int(d) // self.grid) for d in dims)
            pools = {
                (3, "avg"): keras.layers.AveragePooling1D,
                (4, "avg"): keras.layers.AveragePooling2D,
                (3, "max"): keras.layers.MaxPooling1D,
                (4, "max"): keras.layers.MaxPooling2D,
            }
            self.pool = pools[(rank, self.pooling)](
                pool_size=size, strides=size, padding="same", name="pool",
                dtype=self.dtype_policy)
            self.pool.build(shape)
            shape = self.pool.compute_output_shape(shape)
            self.flatten = keras.layers.Flatten(name="flatten", dtype=self.dtype_policy)
            shape = self.flatten.compute_output_shape(shape)
        elif rank > 2:
            pools = {
                (3, "avg"): keras.layers.GlobalAveragePooling1D,
                (4, "avg"): keras.layers.GlobalAveragePooling2D,
                (3, "max"): keras.layers.GlobalMaxPooling1D,
                (4, "max"): keras.layers.GlobalMaxPooling2D,
            }
            self.pool = pools[(rank, self.pooling)](name="pool", dtype=self.dtype_policy)
            self.pool.build(shape)
            shape = self.pool.compute_output_shape(shape)
        if self.hidden_units is not None:
            self.hidden = keras.layers.Dense(
                self.hidden_units, activation=self.hidden_activation, name="hidden", **args
            )
            self.hidden.build(shape)
            shape = self.hidden.compute_output_shape(shape)
        if self.dropout > 0:
            self.drop = keras.layers.Dropout(self.dropout, name="dropout", dtype=self.dtype_policy)
        self.classifier = keras.layers.Dense(
            self.num_classes, activation=self.activation, name="classifier", **args
        )
        self.classifier.build(shape)

    def call(self, inputs, training=None):
        x = inputs
        if self.conv is not None:
            x = self.conv(x)
        if self.pool is not None:
            x = self.pool(x)
        if self.flatten is not None:
            x = self.flatten(x)
        if self.hidden is not None:
            x = self.hidden(x)
        if self.drop is not None:
            x = self.drop(x, training=training)
        return self.classifier(x)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "filters": self.filters,
            "hidden_units": self.hidden_units,
            "activation": self.activation,
            "conv_activation": keras.activations.serialize(self.conv_activation),
            "hidden_activation": keras.activations.serialize(self.hidden_activation),
            "pooling": self.pooling,
            "grid": self.grid,
            "dropout": self.dropout,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
            "bias_regularizer": keras.regularizers.serialize(self.bias_regularizer),
        }


def _positive_int(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(
            f"Expected `{name}` to be an int >= {minimum} (EarlyExitHead). "
            f"Received: {name}={value!r}"
        )
    return int(value)
