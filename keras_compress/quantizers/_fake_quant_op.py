"""TensorFlow's fake-quantization kernel, written in `keras.ops`.

`keras.quantizers.fake_quant_with_min_max_vars` calls TensorFlow's op on
the TensorFlow backend and its own formula elsewhere. The two differ:
Keras rounds the zero point half to even (TensorFlow: half away from
zero), and Keras multiplies by the inverse scale where TensorFlow divides
by the scale. So 0.5 on a [0, 1] grid of 255 steps is level 128 in
Keras's formula and 127 in TensorFlow's (0.5 / float32(1/255) =
127.49999), and on the digits the same QAT step gave logits 0.04 apart
on JAX and PyTorch. This is TensorFlow's formula
(`fake_quant_ops_functor.h`: nudge, clamp, `floor(shifted / scale -
quant_zero + 0.5) * scale`; bit-equal to its op on every value tested)
and its gradient (straight through inside the nudged range; to the
minimum below it, to the maximum above it), for the other backends.
"""

from keras import ops


def fake_quant(x, minimum, maximum, num_bits=8, narrow_range=False, axis=None):
    """Fake-quantizes `x` as TensorFlow's `fake_quant_with_min_max_vars`
    (per channel along `axis` when it is set)."""
    dtype = x.dtype
    x = ops.cast(x, "float32")
    lo = ops.cast(minimum, "float32")
    hi = ops.cast(maximum, "float32")
    if axis is not None:  # (C,) ranges broadcast along `axis`
        shape = [1] * len(x.shape)
        shape[axis] = -1
        lo, hi = ops.reshape(lo, shape), ops.reshape(hi, shape)
    quant_min = 1.0 if narrow_range else 0.0
    quant_max = float((1 << int(num_bits)) - 1)
    scale = (hi - lo) / (quant_max - quant_min)
    inv_scale = (quant_max - quant_min) / (hi - lo)
    zero_from_min = quant_min - lo / scale
    # Half away from zero (std::round); the zero point is >= 0 once clipped.
    zero = ops.where(
        ops.less(zero_from_min, quant_min), quant_min,
        ops.where(ops.greater(zero_from_min, quant_max), quant_max,
                  ops.floor(zero_from_min + 0.5)))
    nudged_min = ops.stop_gradient((quant_min - zero) * scale)
    nudged_max = ops.stop_gradient((quant_max - zero) * scale)
    clamped = ops.maximum(ops.minimum(x, nudged_max), nudged_min)
    quant_zero = ops.floor(-nudged_min * inv_scale + 0.5)
    q = ops.floor((clamped - nudged_min) / scale - quant_zero + 0.5) * scale
    # The value is q; the gradient goes to x inside the range, and to the
    # minimum or maximum where x was clipped to it.
    inside = ops.cast(ops.logical_and(ops.greater_equal(x, nudged_min),
                                      ops.less_equal(x, nudged_max)), "float32")
    below = ops.cast(ops.less(x, nudged_min), "float32")
    above = ops.cast(ops.greater(x, nudged_max), "float32")

    def through(t):
        return t - ops.stop_gradient(t)

    out = (ops.stop_gradient(q) + through(inside * x) + through(below * lo)
           + through(above * hi))
    return ops.cast(out, dtype)
