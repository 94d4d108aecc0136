"""`SlimmableLayer`: what every slimmable keras-compress layer shares.

The one rule for the number of channels at a width lives here
(`active_channels`), and every part of the package (the layers' masks,
`export_width`, the tests) uses it.
"""

import math
import numbers

import keras
import numpy as np
from keras import ops

DEFAULT_WIDTHS = (0.25, 0.5, 0.75, 1.0)

# Two widths closer than this are the same width.
_WIDTH_TOLERANCE = 1e-9


def active_channels(channels, width):
    """The number of channels a layer of `channels` channels keeps at `width`.

    The rule used everywhere in keras-compress: `width * channels` rounded
    half up, at least 1, i.e. `max(1, floor(width * channels + 0.5))`
    (a tolerance of 1e-9 makes e.g. `0.35 * 10` count as 3.5). The kept
    channels are always the first ones.

    Args:
        channels: The full channel count, an int >= 1.
        width: The width multiplier, a float in (0, 1].

    Returns:
        An int in `[1, channels]`.

    Example:

    >>> active_channels(10, 0.25), active_channels(8, 0.25), active_channels(3, 0.1)
    (3, 2, 1)
    """
    return max(1, min(int(channels), int(math.floor(width * channels + 0.5 + 1e-9))))


def check_width_multipliers(width_multipliers, owner=None):
    """Returns `width_multipliers` as a sorted tuple of floats, or raises.

    Allowed: a non-empty list or tuple of numbers in (0, 1] that contains 1.0
    and no value twice.
    """
    where = f" of layer '{owner}'" if owner else ""
    allowed = (
        f"Expected `width_multipliers`{where} to be a non-empty list or tuple "
        "of distinct numbers in (0, 1] that contains 1.0, e.g. "
        "(0.25, 0.5, 0.75, 1.0)."
    )
    if isinstance(width_multipliers, (str, bytes)) or not isinstance(
        width_multipliers, (list, tuple)
    ):
        raise TypeError(f"{allowed} Received: width_multipliers={width_multipliers!r}")
    values = []
    for w in width_multipliers:
        if isinstance(w, bool) or not isinstance(w, numbers.Real):
            raise TypeError(
                f"{allowed} Received: width_multipliers={width_multipliers!r} "
                f"(element {w!r} is not a number)"
            )
        values.append(float(w))
    if not values:
        raise ValueError(f"{allowed} Received: width_multipliers={width_multipliers!r}")
    bad = [w for w in values if not (0.0 < w <= 1.0)]
    if bad:
        raise ValueError(
            f"{allowed} Received: width_multipliers={width_multipliers!r} "
            f"({bad[0]!r} is outside (0, 1])"
        )
    values.sort()
    for a, b in zip(values, values[1:]):
        if b - a <= _WIDTH_TOLERANCE:
            raise ValueError(
                f"{allowed} Received: width_multipliers={width_multipliers!r} "
                f"({a!r} appears twice)"
            )
    if abs(values[-1] - 1.0) > _WIDTH_TOLERANCE:
        raise ValueError(
            f"{allowed} Received: width_multipliers={width_multipliers!r} "
            "(1.0 is missing)"
        )
    values[-1] = 1.0
    return tuple(values)


def width_index(widths, width):
    """The index of `width` in `widths` (within 1e-9), or None."""
    if isinstance(width, bool) or not isinstance(width, numbers.Real):
        return None
    for i, w in enumerate(widths):
        if abs(w - float(width)) <= _WIDTH_TOLERANCE:
            return i
    return None


def _check_bool(name, value):
    if not isinstance(value, bool):
        raise TypeError(
            f"Expected `{name}` to be True or False. Received: {name}={value!r}"
        )
    return value


class SlimmableLayer:
    """Mixin of the slimmable layers: widths, the active width, masks.

    A slimmable layer holds its full-width weights. Its active width is the
    non-trainable int32 scalar variable `width_index` (an index into the
    sorted `width_multipliers`), read inside the computation graph, so
    `keras_compress.slimmable.set_width` switches a compiled model between
    widths without retracing.

    Output shapes are static: at width `w` a layer's output keeps its full
    channel count, and the channels past `active_channels(n, w)` are zeros
    (a mask). One graph serves all widths; `export_width` turns a width into
    a really smaller plain model.

    Subclasses call `_init_slim` in `__init__` and `_build_slim` in `build`.
    """

    def _init_slim(self, width_multipliers, slim_input=None, slim_output=None):
        self.width_multipliers = check_width_multipliers(width_multipliers, self.name)
        if slim_input is not None:
            self.slim_input = _check_bool("slim_input", slim_input)
        if slim_output is not None:
            self.slim_output = _check_bool("slim_output", slim_output)

    def _build_slim(self):
        self.width_index = self.add_weight(
            name="width_index",
            shape=(),
            dtype="int32",
            initializer=keras.initializers.Constant(len(self.width_multipliers) - 1),
            trainable=False,
        )

    @property
    def width(self):
        """The active width multiplier (a float; needs a built layer)."""
        return self.width_multipliers[int(ops.convert_to_numpy(self.width_index))]

    def set_width(self, width):
        """Makes `width` (one of `width_multipliers`) the active width."""
        index = width_index(self.width_multipliers, width)
        if index is None:
            raise ValueError(
                f"Expected `width` to be one of the width_multipliers "
                f"{list(self.width_multipliers)} of layer '{self.name}'. "
                f"Received: width={width!r}"
            )
        self.width_index.assign(index)

    def channels_at(self, channels, width):
        """`active_channels(channels, width)`: the channels kept at `width`."""
        return active_channels(channels, width)

    def _channel_mask(self, channels, dtype):
        """1 for the channels active at the current width, 0 after them."""
        counts = np.array(
            [active_channels(channels, w) for w in self.width_multipliers], "int32"
        )
        count = ops.take(ops.convert_to_tensor(counts), self.width_index)
        keep = ops.less(ops.arange(channels, dtype="int32"), count)
        return ops.cast(keep, dtype)

    def _slim_config(self):
        config = {"width_multipliers": list(self.width_multipliers)}
        if hasattr(self, "slim_input"):
            config["slim_input"] = self.slim_input
        if hasattr(self, "slim_output"):
            config["slim_output"] = self.slim_output
        return config

    def quantize(self, mode=None, **kwargs):
        raise ValueError(
            f"Layer '{self.name}' ({type(self).__name__}) cannot be quantized "
            "by Keras. Expected a plain model: call "
            "keras_compress.slimmable.export_width(model, width) first and "
            f"quantize its result. Received: mode={mode!r}"
        )

    # Keras's Dense and Conv save only their kernel and bias; a slimmable
    # layer also saves its width (and any other variable), as a plain layer.
    def save_own_variables(self, store):
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)
