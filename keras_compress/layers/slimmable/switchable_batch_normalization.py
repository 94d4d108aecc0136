"""`SwitchableBatchNormalization`: private BatchNorm statistics per width."""

import keras
import numpy as np
from keras import constraints
from keras import initializers
from keras import ops
from keras import regularizers

from keras_compress.layers.slimmable.base_slimmable import DEFAULT_WIDTHS
from keras_compress.layers.slimmable.base_slimmable import SlimmableLayer


@keras.saving.register_keras_serializable(package="keras_compress")
class SwitchableBatchNormalization(SlimmableLayer, keras.layers.Layer):
    """BatchNormalization with a private gamma, beta and statistics per width.

    Takes every argument of `keras.layers.BatchNormalization` with the same
    default (batch renormalization is not supported), plus the widths. The
    layer owns one row of `gamma`, `beta`, `moving_mean` and
    `moving_variance` per width: the variables have shape
    `(len(width_multipliers), channels)`. At the active width `w` (see
    `keras_compress.slimmable.set_width`) it normalizes with that width's
    row, updates only that row's moving statistics in training, and zeroes
    the channels past `active_channels(channels, w)` (the first channels are
    the active ones, as in the slimmable convolution before it). Output
    shapes do not depend on the width.

    A feature map of a narrower network has different statistics from the
    same channels in the full network, which is why slimmable networks keep
    private BatchNorm statistics per width (Yu et al., 2019).
    `keras_compress.slimmable.calibrate_batchnorm` recomputes them exactly
    on data after training; `export_width` turns a width into a plain
    `BatchNormalization` with that width's row and channels.

    Args:
        axis, momentum, epsilon, center, scale, beta_initializer,
        gamma_initializer, moving_mean_initializer,
        moving_variance_initializer, beta_regularizer, gamma_regularizer,
        beta_constraint, gamma_constraint, synchronized: as in
            `keras.layers.BatchNormalization` (an initializer, regularizer
            or constraint acts on the whole `(widths, channels)` variable).
        renorm, renorm_clipping, renorm_momentum: as in
            `keras.layers.BatchNormalization`; `renorm` must stay False.
        width_multipliers: The widths the layer can run at, default
            `(0.25, 0.5, 0.75, 1.0)`: distinct numbers in (0, 1] that
            contain 1.0, sorted by the layer.
        **kwargs: Base layer arguments.

    Input shape:
        Arbitrary; `axis` is the channel axis.

    Output shape:
        Same shape as input.

    Example:

    >>> import numpy as np
    >>> bn = SwitchableBatchNormalization(width_multipliers=(0.5, 1.0))
    >>> y = bn(np.random.rand(4, 6, 6, 8).astype("float32"), training=True)
    >>> tuple(bn.moving_mean.shape)
    (2, 8)

    Reference:
        - [Yu et al., Slimmable Neural Networks, ICLR 2019](
          https://arxiv.org/abs/1812.08928)
        - [Yu & Huang, Universally Slimmable Networks and Improved Training
          Techniques, ICCV 2019](https://arxiv.org/abs/1903.05134)
    """

    def __init__(
        self,
        axis=-1,
        momentum=0.99,
        epsilon=1e-3,
        center=True,
        scale=True,
        beta_initializer="zeros",
        gamma_initializer="ones",
        moving_mean_initializer="zeros",
        moving_variance_initializer="ones",
        beta_regularizer=None,
        gamma_regularizer=None,
        beta_constraint=None,
        gamma_constraint=None,
        renorm=False,
        renorm_clipping=None,
        renorm_momentum=0.99,
        synchronized=False,
        width_multipliers=DEFAULT_WIDTHS,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if renorm:
            raise ValueError(
                f"Layer '{self.name}': batch renormalization is not supported "
                f"by {type(self).__name__}. Expected renorm=False. Received: "
                f"renorm={renorm!r}"
            )
        if synchronized and keras.backend.backend() != "tensorflow":
            raise ValueError(
                "Expected synchronized=False: synchronized=True needs the "
                "TensorFlow backend. Received: synchronized=True on backend "
                f"{keras.backend.backend()!r}"
            )
        self.axis = int(axis)
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        self.center = center
        self.scale = scale
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(
            moving_variance_initializer
        )
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.beta_constraint = constraints.get(beta_constraint)
        self.gamma_constraint = constraints.get(gamma_constraint)
        self.renorm = renorm
        self.renorm_clipping = renorm_clipping
        self.renorm_momentum = renorm_momentum
        self.synchronized = synchronized
        self._init_slim(width_multipliers)
        self.gamma = None
        self.beta = None
        self._reduction_axes = None
        # Set by `calibrate_batchnorm` while it measures statistics.
        self._calibration = None

    def build(self, input_shape):
        ndim = len(input_shape)
        if not -ndim <= self.axis < ndim:
            raise ValueError(
                f"Expected `axis` of layer '{self.name}' to be an axis of the "
                f"input shape {tuple(input_shape)}. Received: axis={self.axis}"
            )
        channels = input_shape[self.axis]
        if channels is None:
            raise ValueError(
                f"Expected the channel axis of the input of layer "
                f"'{self.name}' to be known. Received: input shape "
                f"{tuple(input_shape)}, axis={self.axis}"
            )
        shape = (len(self.width_multipliers), int(channels))
        if self.scale:
            self.gamma = self.add_weight(
                shape=shape, name="gamma", initializer=self.gamma_initializer,
                regularizer=self.gamma_regularizer,
                constraint=self.gamma_constraint, autocast=False,
            )
        if self.center:
            self.beta = self.add_weight(
                shape=shape, name="beta", initializer=self.beta_initializer,
                regularizer=self.beta_regularizer,
                constraint=self.beta_constraint, autocast=False,
            )
        self.moving_mean = self.add_weight(
            shape=shape, name="moving_mean",
            initializer=self.moving_mean_initializer, trainable=False,
            autocast=False,
        )
        self.moving_variance = self.add_weight(
            shape=shape, name="moving_variance",
            initializer=self.moving_variance_initializer, trainable=False,
            autocast=False,
        )
        self._build_slim()
        self.input_spec = keras.layers.InputSpec(
            ndim=ndim, axes={self.axis: int(channels)}
        )
        self._reduction_axes = [a for a in range(ndim) if a != self.axis % ndim]

    @property
    def channels(self):
        """The full channel count (needs a built layer)."""
        return int(self.moving_mean.shape[-1])

    def compute_output_shape(self, input_shape):
        return input_shape

    def call(self, inputs, training=None):
        x = inputs
        if x.dtype in ("float16", "bfloat16"):
            x = ops.cast(x, "float32")
        index = self.width_index
        gamma = ops.take(self.gamma, index, axis=0) if self.scale else None
        beta = ops.take(self.beta, index, axis=0) if self.center else None
        if self._calibration is not None:
            mean, variance = self._calibration_moments(x)
        elif training and self.trainable:
            mean, variance = ops.moments(
                x, axes=self._reduction_axes, synchronized=self.synchronized
            )
            row = ops.expand_dims(
                ops.equal(ops.arange(len(self.width_multipliers), dtype="int32"), index),
                -1,
            )
            m = self.momentum
            # Read first: JAX's `where` does not read variables.
            moving_mean = ops.convert_to_tensor(self.moving_mean)
            moving_variance = ops.convert_to_tensor(self.moving_variance)
            self.moving_mean.assign(ops.where(
                row, moving_mean * m + mean * (1.0 - m), moving_mean
            ))
            self.moving_variance.assign(ops.where(
                row, moving_variance * m + variance * (1.0 - m), moving_variance,
            ))
        else:
            mean = ops.take(self.moving_mean, index, axis=0)
            variance = ops.take(self.moving_variance, index, axis=0)
        y = ops.batch_normalization(
            x, mean=mean, variance=variance, axis=self.axis, offset=beta,
            scale=gamma, epsilon=self.epsilon,
        )
        mask = self._channel_mask(self.channels, y.dtype)
        if self.axis % len(y.shape) != len(y.shape) - 1:
            shape = [1] * len(y.shape)
            shape[self.axis] = self.channels
            mask = ops.reshape(mask, shape)
        return ops.cast(ops.multiply(y, mask), self.compute_dtype)

    def _calibration_moments(self, x):
        """Batch moments; adds the batch to the exact running sums (eager)."""
        mean, variance = ops.moments(x, axes=self._reduction_axes)
        values = np.moveaxis(np.asarray(ops.convert_to_numpy(x), "float64"),
                             self.axis, -1).reshape(-1, self.channels)
        state = self._calibration
        state["count"] += values.shape[0]
        state["sum"] += values.sum(axis=0)
        state["sum_squares"] += np.square(values).sum(axis=0)
        return mean, variance

    def get_config(self):
        return {
            **super().get_config(),
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "beta_initializer": initializers.serialize(self.beta_initializer),
            "gamma_initializer": initializers.serialize(self.gamma_initializer),
            "moving_mean_initializer": initializers.serialize(
                self.moving_mean_initializer
            ),
            "moving_variance_initializer": initializers.serialize(
                self.moving_variance_initializer
            ),
            "beta_regularizer": regularizers.serialize(self.beta_regularizer),
            "gamma_regularizer": regularizers.serialize(self.gamma_regularizer),
            "beta_constraint": constraints.serialize(self.beta_constraint),
            "gamma_constraint": constraints.serialize(self.gamma_constraint),
            "renorm": self.renorm,
            "renorm_clipping": self.renorm_clipping,
            "renorm_momentum": self.renorm_momentum,
            "synchronized": self.synchronized,
            **self._slim_config(),
        }
