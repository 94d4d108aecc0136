"""Bit streams: unsigned fields of given widths, most significant bit first.

A stream is `(bytes, nbits)`, packed with `numpy.packbits` and the last
byte zero-padded (the conventions of `keras_compress.analysis.coding`).
"""

import numpy as np


def pack_bits(values, widths):
    """Writes unsigned integers with given bit widths into one bit stream.

    Args:
        values: Non-negative integers (array-like); `values[i]` must be
            below `2 ** widths[i]`.
        widths: Bit widths (array-like of ints in `[0, 64]`, or one int).

    Returns:
        `(data, nbits)`: the stream as `bytes` (most significant bit first,
        last byte zero-padded) and its length in bits.
    """
    values = np.asarray(values, dtype=np.uint64).reshape(-1)
    widths = np.broadcast_to(np.asarray(widths, dtype=np.int64), values.shape)
    nbits = int(widths.sum())
    if nbits == 0:
        return b"", 0
    top = int(widths.max())
    shifts = np.arange(top - 1, -1, -1, dtype=np.uint64)
    bits = ((values[:, None] >> shifts[None, :]) & np.uint64(1)).astype(np.uint8)
    keep = np.arange(top)[None, :] >= (top - widths)[:, None]
    return np.packbits(bits[keep]).tobytes(), nbits


def unpack_bits(data, nbits):
    """Returns the first `nbits` bits of `data` as a uint8 array of 0/1."""
    bits = np.unpackbits(np.frombuffer(bytes(data), dtype=np.uint8))
    if nbits > bits.size:
        raise ValueError(
            f"Expected a stream of at least {nbits} bits. "
            f"Received: {bits.size} bits"
        )
    return bits[:nbits]


def read_fields(bits, start, count, width):
    """Reads `count` unsigned `width`-bit fields from `bits` at `start`.

    Args:
        bits: uint8 array of 0/1 (from `unpack_bits`).
        start: Bit position of the first field.
        count: Number of fields.
        width: Bits per field.

    Returns:
        `(values, end)`: the fields as an int64 array and the position
        after the last one.
    """
    end = start + count * width
    if end > bits.size:
        raise ValueError(
            f"Expected {count} fields of {width} bits at bit {start}. "
            f"Received: a stream of {bits.size} bits (truncated)"
        )
    if count == 0 or width == 0:
        return np.zeros(count, dtype=np.int64), end
    chunk = bits[start:end].reshape(count, width).astype(np.int64)
    weights = np.left_shift(1, np.arange(width - 1, -1, -1, dtype=np.int64))
    return chunk @ weights, end
