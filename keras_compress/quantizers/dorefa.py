"""`DoReFa`: DoReFa-Net k-bit weight and activation quantization."""

import keras
from keras import ops

from keras_compress._checks import check_int
from keras_compress.quantizers.base import Quantizer
from keras_compress.quantizers.base import straight_through

MODES = ("weight", "activation")


def quantize_k(r, bits):
    """round((2^k - 1) r) / (2^k - 1) with a straight-through gradient."""
    n = float(2**bits - 1)
    return straight_through(r, ops.round(r * n) / n)


@keras.saving.register_keras_serializable(package="keras_compress")
class DoReFa(Quantizer):
    """DoReFa-Net k-bit quantization of weights or activations.

    With `quantize_k(r) = round((2^k - 1) r) / (2^k - 1)` (rounding half to
    even) and a straight-through (identity) gradient for the rounding:

    - `mode="weight"`, `bits=1`: `sign(x) * mean(|x|)` (sign(0) = +1; the
      scale is a per-tensor constant), identity gradient.
    - `mode="weight"`, `bits>1`: `2 * quantize_k(tanh(x) / (2 max|tanh(x)|)
      + 0.5) - 1`, at most `2^k` values in [-1, 1]. The gradient flows
      through the tanh normalization (including the max), as in the paper's
      code; only the rounding is straight through.
    - `mode="activation"`: `quantize_k(clip(x, 0, 1))`; the gradient is 1 on
      [0, 1] and 0 outside (the clip). `bits=1` thresholds at 0.5.

    Args:
        bits: Bits per value, 1 to 8. Default 2.
        mode: `"weight"` (default) or `"activation"`.
        name: Optional name for the quantizer's weights.

    Example:

    >>> import numpy as np
    >>> q = DoReFa(bits=2, mode="activation")
    >>> y = q(np.array([-1.0, 0.3, 0.5, 2.0], "float32"))  # levels k / 3
    >>> keras.ops.convert_to_numpy(y) * 3
    array([0., 1., 2., 3.], dtype=float32)

    Reference:
        Zhou et al., "DoReFa-Net: Training Low Bitwidth Convolutional Neural
        Networks with Low Bitwidth Gradients", arXiv:1606.06160, 2016.
    """

    def __init__(self, bits=2, mode="weight", name=None):
        super().__init__(name=name)
        self.bits = check_int("bits", bits, 1)
        if self.bits > 8:
            raise ValueError(
                "Expected `bits` to be an integer from 1 to 8 (what DoReFa "
                f"supports). Received: bits={bits!r}"
            )
        if mode not in MODES:
            raise ValueError(
                f"Expected `mode` to be one of {list(MODES)}. "
                f"Received: mode={mode!r}"
            )
        self.mode = mode

    def quantize(self, x, training=False):
        x = ops.convert_to_tensor(x)
        if self.mode == "activation":
            return quantize_k(ops.clip(x, 0.0, 1.0), self.bits)
        if self.bits == 1:
            e = ops.stop_gradient(ops.mean(ops.abs(x)))
            q = ops.where(ops.greater_equal(x, 0.0), e, -e)
            return straight_through(x, ops.cast(q, x.dtype))
        t = ops.tanh(x)
        m = ops.maximum(ops.max(ops.abs(t)), 1e-12)
        return 2.0 * quantize_k(t / (2.0 * m) + 0.5, self.bits) - 1.0

    def get_config(self):
        return {**super().get_config(), "bits": self.bits, "mode": self.mode}
