"""`PowerOfTwo`: logarithmic (power-of-two, shift) quantization."""

import keras
from keras import ops

from keras_compress._checks import check_int
from keras_compress.quantizers.base import Quantizer
from keras_compress.quantizers.base import straight_through
from keras_compress.quantizers.ste_sign import check_positive


@keras.saving.register_keras_serializable(package="keras_compress")
class PowerOfTwo(Quantizer):
    """Logarithmic quantization: zero or a signed power of two.

    One bit holds the sign and `bits - 1` bits an exponent, with one code
    kept for zero, so the levels are 0 and `+-max_value * 2^-e` for `e` in
    `0 .. emax = 2^(bits-1) - 2`. Rounding is in the log domain:
    `e = clip(round(log2(max_value / |x|)), 0, emax)` (half to even), so
    values above `max_value` saturate to `+-max_value`; values with `|x|`
    below half the smallest level, `max_value * 2^-emax / 2`, become 0.
    The gradient is the identity everywhere (straight through, as QKeras's
    `quantized_po2`), including above `max_value`.

    Args:
        bits: Bits per value (sign + exponent), 2 to 8. Default 4 (levels
            0 and +-max_value * 2^-e for e in 0..6).
        max_value: Largest magnitude, > 0. Default 1.0.
        name: Optional name for the quantizer's weights.

    Example:

    >>> import numpy as np
    >>> q = PowerOfTwo(bits=3)
    >>> keras.ops.convert_to_numpy(q(np.array([-0.3, 0.1, 0.7, 3.0], "float32")))
    array([-0.25,  0.  ,  0.5 ,  1.  ], dtype=float32)

    Reference:
        Miyashita et al., "Convolutional Neural Networks using Logarithmic
        Data Representation", arXiv:1603.01025, 2016.
    """

    def __init__(self, bits=4, max_value=1.0, name=None):
        super().__init__(name=name)
        self.bits = check_int("bits", bits, 2)
        if self.bits > 8:
            raise ValueError(
                "Expected `bits` to be an integer from 2 to 8 (what "
                f"PowerOfTwo supports). Received: bits={bits!r}"
            )
        self.max_value = check_positive("max_value", max_value)

    def quantize(self, x, training=False):
        x = ops.convert_to_tensor(x)
        emax = 2 ** (self.bits - 1) - 2
        zero_below = self.max_value * 2.0 ** -(emax + 1)  # half the smallest
        # float32 math: 8-bit levels go down to 2^-126, below float16.
        a = ops.abs(ops.cast(ops.stop_gradient(x), "float32"))
        keep = ops.greater_equal(a, zero_below)
        a = ops.maximum(a, zero_below)  # no log of 0 (those become 0)
        e = ops.clip(ops.round(ops.log2(self.max_value / a)), 0.0, float(emax))
        level = self.max_value * ops.power(2.0, -e)
        q = ops.where(keep, level, 0.0) * ops.sign(ops.cast(x, "float32"))
        return straight_through(x, ops.cast(q, x.dtype))

    def get_config(self):
        return {
            **super().get_config(),
            "bits": self.bits,
            "max_value": self.max_value,
        }
