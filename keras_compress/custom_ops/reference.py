"""The binary operators in NumPy: the reference the C core is checked against.

`run` computes what `kc_binary_run` computes (and so what TFLite's int8
FULLY_CONNECTED / CONV_2D compute on the same binary weights), with TFLite's
integer requantization; `pack_signs` / `unpack_signs` are the weight bit
layout; `quantize_multiplier` is TFLite's QuantizeMultiplier.
"""

import math

import numpy as np

from keras_compress.custom_ops import options as _options

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def pack_signs(signs, words_per_tap):
    """Packs +-1 signs `(out_c, taps, in_c)` into the operators' layout,
    bytes `(taps * words_per_tap, out_c * 4)`: row k = tap * words + w
    holds one little-endian 32-bit word per output channel, bit c standing
    for input channel 32 * w + c (1 for +1; unused bits 0)."""
    signs = np.asarray(signs)
    out_c, taps, in_c = signs.shape
    bits = np.zeros((out_c, taps, words_per_tap * 32), dtype=np.uint8)
    bits[:, :, :in_c] = signs > 0
    # Within each byte, bit k is element 8 * byte + k (little-endian order).
    packed = np.packbits(bits.reshape(out_c, taps, words_per_tap, 4, 8), axis=-1,
                         bitorder="little")[..., 0]  # (out_c, taps, words, 4)
    return np.ascontiguousarray(
        packed.transpose(1, 2, 0, 3).reshape(taps * words_per_tap, out_c * 4))


def unpack_signs(packed, taps, in_c):
    """The inverse of `pack_signs`: +-1 int8 signs `(out_c, taps, in_c)`."""
    packed = np.asarray(packed, dtype=np.uint8)
    rows = packed.shape[0]
    words = rows // taps
    out_c = packed.shape[1] // 4
    per_word = packed.reshape(taps, words, out_c, 4).transpose(2, 0, 1, 3)
    bits = np.unpackbits(per_word.reshape(out_c, taps, words * 4), axis=-1,
                         bitorder="little")
    return np.where(bits[:, :, :in_c] > 0, 1, -1).astype(np.int8)


def quantize_multiplier(real):
    """TFLite's QuantizeMultiplier: `(multiplier, shift)` with real ~
    multiplier * 2**(shift - 31)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    fixed = int(math.floor(abs(q) * (1 << 31) + 0.5)) * (1 if q >= 0 else -1)
    if fixed == (1 << 31):
        fixed //= 2
        shift += 1
    if shift < -31:
        shift, fixed = 0, 0
    return fixed, shift


def _doubling_high_mul(a, b):
    ab = a.astype(np.int64) * np.int64(b)
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    # C division truncates toward zero.
    total = ab + nudge
    out = np.where(total >= 0, total // (1 << 31), -((-total) // (1 << 31)))
    overflow = (a == INT32_MIN) & (np.int64(b) == INT32_MIN)
    return np.where(overflow, INT32_MAX, out).astype(np.int64)


def _rounding_divide_by_pot(x, exponent):
    mask = (1 << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x, multiplier, shift, rounding="double"):
    """TFLite's MultiplyByQuantizedMultiplier, elementwise (int32 wrap).

    `rounding`: `"double"` (TFLite's default: TFLite Micro, LiteRT's
    reference CONV_2D) or `"single"` (TFLITE_SINGLE_ROUNDING; LiteRT's
    reference FULLY_CONNECTED).
    """
    x = np.asarray(x, dtype=np.int64)
    multiplier = np.broadcast_to(np.asarray(multiplier, dtype=np.int64), x.shape)
    shift = np.broadcast_to(np.asarray(shift, dtype=np.int64), x.shape)
    if rounding == "single":
        total = 31 - shift
        return (x * multiplier + (np.int64(1) << (total - 1))) >> total
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = _wrap32(x << left)
    out = np.empty_like(x)
    for m in np.unique(np.stack([multiplier, right], -1).reshape(-1, 2), axis=0):
        where = (multiplier == m[0]) & (right == m[1])
        high = _doubling_high_mul(shifted[where], int(m[0]))
        out[where] = _rounding_divide_by_pot(high, int(m[1]))
    return out


def _wrap32(x):
    return ((np.asarray(x, dtype=np.int64) + 2**31) % 2**32) - 2**31


# How LiteRT 2.3's reference int8 operators round (measured), by kind.
LITERT_ROUNDING = {_options.FC: "single", _options.CONV2D: "double"}


def run(options, x, packed, params, rounding="double"):
    """Runs an operator in NumPy.

    Args:
        options: The operator's options (a dict, see `_options`).
        x: int8 input, `batch` samples of `in_h * in_w * in_c` values.
        packed: The packed weights (`pack_signs` layout).
        params: The channel table (the columns `options["columns"]` names).
        rounding: The requantization's rounding, `"double"` (default) or
            `"single"` (see `multiply_by_quantized_multiplier`).

    Returns:
        int8 outputs, `(batch, out_h, out_w, out_c)` (FC: `(batch, 1, 1,
        out_c)`).
    """
    o = options
    _options.check(o)
    taps = o["k_h"] * o["k_w"]
    x = np.asarray(x, dtype=np.int64).reshape(-1, o["in_h"], o["in_w"], o["in_c"])
    signs = unpack_signs(packed, taps, o["in_c"]).astype(np.int64)
    signs = signs.reshape(o["out_c"], o["k_h"], o["k_w"], o["in_c"])
    if o["input_mode"] == _options.INPUT_BINARY:
        values = np.where(x >= o["threshold"], o["d_plus"], o["d_minus"])
    else:
        values = x - o["input_zero_point"]
    batch = x.shape[0]
    sums = np.zeros((batch, o["out_h"], o["out_w"], o["out_c"]), dtype=np.int64)
    for ky in range(o["k_h"]):
        for kx in range(o["k_w"]):
            iy = np.arange(o["out_h"]) * o["stride_h"] - o["pad_top"] + ky * o["dilation_h"]
            ix = np.arange(o["out_w"]) * o["stride_w"] - o["pad_left"] + kx * o["dilation_w"]
            valid_y = (iy >= 0) & (iy < o["in_h"])
            valid_x = (ix >= 0) & (ix < o["in_w"])
            patch = values[:, np.clip(iy, 0, o["in_h"] - 1)][:, :, np.clip(ix, 0, o["in_w"] - 1)]
            patch = patch * (valid_y[None, :, None, None] & valid_x[None, None, :, None])
            sums += np.einsum("bhwc,oc->bhwo", patch, signs[:, ky, kx, :])
    p = _options.channel_parameters(o, params)
    acc = _wrap32(sums * p[:, 0] + p[:, 1])
    y = multiply_by_quantized_multiplier(
        acc, np.broadcast_to(p[:, 2], acc.shape), np.broadcast_to(p[:, 3], acc.shape),
        rounding)
    y = np.clip(y + o["output_zero_point"], o["act_min"], o["act_max"])
    return y.astype(np.int8)
