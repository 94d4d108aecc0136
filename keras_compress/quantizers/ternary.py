"""`Ternary`: ternary weight networks (TWN) threshold quantization."""

import keras
from keras import ops

from keras_compress._checks import check_int
from keras_compress.quantizers.base import Quantizer
from keras_compress.quantizers.ste_sign import (
    check_positive,
    reduce_axes,
    straight_through,
)


@keras.saving.register_keras_serializable(package="keras_compress")
class Ternary(Quantizer):
    """Ternary quantization to {-alpha, 0, +alpha} (TWN).

    With `delta = threshold_factor * mean(|x|)`, values with `|x| > delta`
    become `alpha * sign(x)` and the rest 0, where `alpha` is the mean of
    `|x|` over the values above the threshold (the L2-optimal scale of TWN).
    `delta` and `alpha` are per tensor, or per index of `axis`. Where no
    value exceeds `delta` (an all-zero tensor or channel) the output is 0.
    The gradient is the identity (straight through; `alpha` and `delta` are
    constants in the backward pass).

    Args:
        threshold_factor: `delta / mean(|x|)`, > 0. Default 0.7 (TWN's
            approximation for normal or uniform weights).
        scale: Scale the nonzero outputs by `alpha` (default True); if
            False they are exactly +-1.
        axis: `None` (one `delta` and `alpha` per tensor, the default) or
            the channel axis (one per channel, e.g. -1 for a kernel's output
            channels; the mean runs over all other axes).
        name: Optional name for the quantizer's weights.

    Example:

    >>> import numpy as np
    >>> q = Ternary()
    >>> keras.ops.convert_to_numpy(q(np.array([-1.0, 0.1, 0.9], "float32")))
    array([-0.95,  0.  ,  0.95], dtype=float32)

    Reference:
        Li & Liu, "Ternary Weight Networks", arXiv:1605.04711, 2016.
    """

    def __init__(self, threshold_factor=0.7, scale=True, axis=None, name=None):
        super().__init__(name=name)
        self.threshold_factor = check_positive("threshold_factor", threshold_factor)
        self.scale = bool(scale)
        self.axis = None if axis is None else check_int("axis", axis, -(2**31))

    def build_state(self, layer, shape, prefix):
        reduce_axes(self.axis, len(shape))

    def quantize(self, x, training=False):
        x = ops.convert_to_tensor(x)
        axes = reduce_axes(self.axis, len(x.shape))
        a = ops.stop_gradient(ops.abs(x))
        delta = self.threshold_factor * ops.mean(a, axis=axes, keepdims=True)
        # 1 where |x| > delta, else 0. Written without a bool-to-float cast:
        # the TFLite converter does not fold that cast on large kernels and
        # then fails on the FakeQuant op that follows (int8 export).
        mask = ops.sign(ops.relu(a - delta))
        q = ops.sign(x) * mask
        if self.scale:
            total = ops.sum(a * mask, axis=axes, keepdims=True)
            count = ops.sum(mask, axis=axes, keepdims=True)
            q = q * (total / ops.maximum(count, 1.0))
        return straight_through(x, q)

    def get_config(self):
        return {
            **super().get_config(),
            "threshold_factor": self.threshold_factor,
            "scale": self.scale,
            "axis": self.axis,
        }
