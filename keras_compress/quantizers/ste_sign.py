"""`SteSign`: deterministic BinaryConnect sign, clipped straight-through gradient."""

import keras
from keras import ops

from keras_compress._checks import check_int
from keras_compress.quantizers.base import Quantizer, straight_through

SCALES = (None, "tensor", "channel")


def check_positive(name, value):
    """Returns `value` as a float, or raises if it is not a number > 0."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not number > 0.0:
        raise ValueError(
            f"Expected `{name}` to be a positive number. Received: {name}={value!r}"
        )
    return number



def reduce_axes(axis, rank):
    """All axes of a rank-`rank` tensor but `axis` (all of them if None)."""
    if axis is None:
        return None
    if not -rank <= axis < rank:
        raise ValueError(
            f"Expected `axis` to be an axis of a rank-{rank} tensor (from "
            f"{-rank} to {rank - 1}). Received: axis={axis}"
        )
    axis %= rank
    return tuple(i for i in range(rank) if i != axis)


def sign(x):
    """sign(x) with sign(0) = +1: exactly +-1, never 0."""
    ones = ops.ones_like(x)
    return ops.where(ops.greater_equal(x, 0.0), ones, -ones)


def clipped_ste_sign(x, clip_value):
    """sign(x) forward; gradient 1 where |x| <= clip_value, else 0."""
    return straight_through(ops.clip(x, -clip_value, clip_value), sign(x))


@keras.saving.register_keras_serializable(package="keras_compress")
class SteSign(Quantizer):
    """Deterministic binarization (BinaryConnect), optionally scaled (BWN).

    The forward pass is `sign(x)` with `sign(0) = +1`, so outputs are exactly
    -1 or +1. The backward pass is the clipped straight-through estimator
    (the gradient of hard tanh): 1 where `|x| <= clip_value`, 0 elsewhere.

    With `scale`, the outputs are `+-alpha` with `alpha = mean(|x|)`, per
    tensor or per output channel (Binary Weight Networks, XNOR-Net). `alpha`
    is treated as a constant in the backward pass (`stop_gradient`), so the
    gradient is `alpha` inside the clip and 0 outside.

    Args:
        clip_value: Gradient cut-off of the straight-through estimator, > 0.
            Default 1.0.
        scale: `None` (outputs +-1, the default), `"tensor"` (one `alpha`
            = mean |x|) or `"channel"` (one `alpha` per index of `axis`, the
            mean of |x| over all other axes).
        axis: The channel axis of `scale="channel"`. Default -1 (the output
            channels of a Dense or Conv kernel).
        name: Optional name for the quantizer's weights.

    Example:

    >>> import numpy as np
    >>> q = SteSign()
    >>> keras.ops.convert_to_numpy(q(np.array([-0.3, 0.0, 2.0], "float32")))
    array([-1.,  1.,  1.], dtype=float32)

    Reference:
        Courbariaux et al., "BinaryConnect: Training Deep Neural Networks
        with binary weights during propagations", NeurIPS 2015.
        Rastegari et al., "XNOR-Net: ImageNet Classification Using Binary
        Convolutional Neural Networks", ECCV 2016 (the scaling).
    """

    def __init__(self, clip_value=1.0, scale=None, axis=-1, name=None):
        super().__init__(name=name)
        self.clip_value = check_positive("clip_value", clip_value)
        if scale not in SCALES:
            raise ValueError(
                f"Expected `scale` to be one of {list(SCALES)}. "
                f"Received: scale={scale!r}"
            )
        self.scale = scale
        self.axis = check_int("axis", axis, -(2**31))

    def build_state(self, layer, shape, prefix):
        if self.scale == "channel":
            reduce_axes(self.axis, len(shape))

    def quantize(self, x, training=False):
        x = ops.convert_to_tensor(x)
        q = clipped_ste_sign(x, self.clip_value)
        if self.scale is None:
            return q
        axes = reduce_axes(self.axis if self.scale == "channel" else None,
                           len(x.shape))
        alpha = ops.mean(ops.abs(x), axis=axes, keepdims=True)
        return ops.stop_gradient(alpha) * q

    def get_config(self):
        return {
            **super().get_config(),
            "clip_value": self.clip_value,
            "scale": self.scale,
            "axis": self.axis,
        }
