"""The relative-index (gap) stream of a sparse tensor, Deep Compression style.

Deep Compression (Han, Mao & Dally, ICLR 2016, section 3 and figure 2)
stores a pruned tensor as its non-zero values, each with the distance to
the previous one in a few bits. Here, over the tensor flattened in C (row-
major) order, each stored entry carries its *gap*: the number of zeros
since the previous stored entry (or since the start), in `index_bits` bits,
so gaps `0 .. 2 ** index_bits - 1` fit. A longer gap is bridged by filler
entries: an entry of value zero with the largest gap, as in the paper's
figure 2. Fillers are stored entries (they take a gap field and a value).
Zeros after the last non-zero need no entry: the decoder knows the
tensor's size.
"""

import dataclasses

import numpy as np

FC_INDEX_BITS = 5
CONV_INDEX_BITS = 8


def default_index_bits(shape):
    """Deep Compression's index width for a kernel of this shape.

    Returns:
        5 for tensors of rank <= 2 (fully connected, embeddings), 8 for
        higher ranks (convolutions), the paper's choices.
    """
    return FC_INDEX_BITS if len(shape) <= 2 else CONV_INDEX_BITS


def check_index_bits(index_bits):
    """Checks `index_bits` is an int in `[1, 32]`; returns it."""
    if isinstance(index_bits, bool) or not isinstance(
        index_bits, (int, np.integer)
    ) or not 1 <= index_bits <= 32:
        raise ValueError(
            "Expected `index_bits` to be an int in [1, 32] (bits per gap). "
            f"Received: index_bits={index_bits!r}"
        )
    return int(index_bits)


@dataclasses.dataclass
class RelativeIndexStream:
    """The stored entries of a sparse tensor.

    Args:
        size: Number of elements of the dense tensor.
        index_bits: Width of a gap field.
        gaps: Gap of each stored entry (int64 array, each `< 2 **
            index_bits`).
        values: Value of each stored entry (0 for fillers).
        positions: Flat (C order) position of each stored entry.
        fillers: How many entries are fillers.
    """

    size: int
    index_bits: int
    gaps: np.ndarray
    values: np.ndarray
    positions: np.ndarray
    fillers: int

    @property
    def entries(self):
        """Number of stored entries: non-zeros plus fillers."""
        return int(self.gaps.size)


def encode_relative(array, index_bits):
    """Builds the relative-index stream of an array.

    Args:
        array: A NumPy array; its zeros (`== 0`, so `-0.0` too) are skipped.
        index_bits: Bits per gap (int in `[1, 32]`).

    Returns:
        A `RelativeIndexStream`.

    Example:

    ```python
    s = encode_relative(np.array([0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 7]), 3)
    s.gaps.tolist(), s.values.tolist()   # ([1, 7, 0], [5, 0, 7])
    ```
    """
    index_bits = check_index_bits(index_bits)
    flat = np.asarray(array).reshape(-1)
    nonzero = np.flatnonzero(flat != 0)
    gap = np.diff(nonzero, prepend=-1) - 1
    span = np.int64(1) << index_bits  # A filler covers span positions.
    fills = gap // span
    per_entry = fills + 1
    total = int(per_entry.sum())
    real = np.cumsum(per_entry) - 1  # Where the real entries go.
    gaps = np.full(total, span - 1, dtype=np.int64)
    gaps[real] = gap % span
    values = np.zeros(total, dtype=flat.dtype)
    values[real] = flat[nonzero]
    positions = np.cumsum(gaps + 1) - 1
    return RelativeIndexStream(
        size=int(flat.size),
        index_bits=index_bits,
        gaps=gaps,
        values=values,
        positions=positions,
        fillers=int(fills.sum()),
    )


def decode_relative(gaps, values, size, dtype=None):
    """Rebuilds the flat dense tensor from gaps and stored values.

    Args:
        gaps: Gap of each stored entry (zeros since the previous entry).
        values: Value of each stored entry (same length as `gaps`).
        size: Number of elements of the dense tensor.
        dtype: Result dtype. Defaults to the dtype of `values`.

    Returns:
        The flat tensor (C order) as a NumPy array of `size` elements.

    Raises:
        ValueError: if the lengths differ, a gap is negative or the entries
            run past `size`.
    """
    gaps = np.asarray(gaps, dtype=np.int64).reshape(-1)
    values = np.asarray(values).reshape(-1)
    if gaps.shape != values.shape:
        raise ValueError(
            "Expected one value per gap. Received: "
            f"{gaps.size} gaps and {values.size} values"
        )
    if np.any(gaps < 0):
        raise ValueError("Expected gaps >= 0. Received: a negative gap")
    positions = np.cumsum(gaps + 1) - 1
    if positions.size and positions[-1] >= size:
        raise ValueError(
            f"Expected the entries to fit in size={size}. Received: an "
            f"entry at position {int(positions[-1])}"
        )
    out = np.zeros(int(size), dtype=dtype or values.dtype)
    out[positions] = values
    return out
