"""A complete Deep Compression encoding of one tensor, and its decoder.

`encode_tensor` writes a tensor as Deep Compression's last stage does
(Han, Mao & Dally, ICLR 2016, sections 3-5): a codebook of shared values,
one cluster index per stored weight, Huffman-coded, and, when `sparse`, the
relative-index (gap) stream of `keras_compress.analysis.relative_index`,
Huffman-coded too. `decode_tensor` rebuilds the tensor from those bit
strings alone, so `EncodedTensor.bits` is a size, not an estimate.

What `EncodedTensor.bits` counts, in its `sections`:

- `codebook`: the shared values in the tensor's own dtype (`value_bits`
  each). Per tensor: the `clusters` distinct stored values, ascending. Per
  channel (`channel_axis` given): a table of `clusters` values for every
  channel, `clusters` being the largest number of distinct stored values in
  any channel; shorter channel tables are padded (TFLite Micro's look-up
  tables use the same layout).
- `index_table` / `indices`: the canonical Huffman table of the cluster
  indices (one 5-bit length per index, indices implicit) and the coded
  indices. A cluster index is the rank of a stored value among the distinct
  stored values of its codebook.
- `gap_table` / `gaps` (sparse only): the table of the gap code (per gap
  value present: the value in `index_bits` bits and a 5-bit length) and the
  coded gaps, one per stored entry (non-zeros and fillers).

Not counted: a header of a few integers per tensor that every
representation, dense included, needs (shape, dtype, `channel_axis`,
`index_bits`, `clusters`, `entries`, `gap_symbols`). Zeros are values
`== 0`, so `-0.0` and `0.0` are one value.
"""

import dataclasses

import numpy as np

from keras_compress.analysis import relative_index
from keras_compress.analysis.coding import MAX_CODE_LENGTH
from keras_compress.analysis.coding import HuffmanCode
from keras_compress.analysis.coding import entropy_bits


def check_array(array, arg_name="array"):
    """Returns `array` as a NumPy array of finite numbers, or raises."""
    if not isinstance(array, np.ndarray) and not hasattr(array, "__array__"):
        raise TypeError(
            f"Expected `{arg_name}` to be a NumPy array (or array-like with "
            f"`__array__`). Received: {arg_name} of type "
            f"{type(array).__name__}"
        )
    value = np.asarray(array)
    if value.dtype.kind not in "iuf":
        raise TypeError(
            f"Expected `{arg_name}` to hold integers or floats. "
            f"Received: {arg_name} with dtype {value.dtype}"
        )
    if value.dtype.kind == "f" and np.isnan(value).any():
        raise ValueError(
            f"Expected `{arg_name}` to hold no NaN. Received: "
            f"{int(np.isnan(value).sum())} NaN values"
        )
    return value


def check_channel_axis(channel_axis, shape, arg_name="channel_axis"):
    """Returns `channel_axis` as a non-negative axis of `shape`, or None."""
    if channel_axis is None:
        return None
    rank = len(shape)
    if isinstance(channel_axis, bool) or not isinstance(
        channel_axis, (int, np.integer)
    ) or not -rank <= channel_axis < rank:
        raise ValueError(
            f"Expected `{arg_name}` to be None or an axis of a tensor of "
            f"shape {tuple(shape)}. Received: {arg_name}={channel_axis!r}"
        )
    return int(channel_axis) % rank


def channels_of(positions, shape, channel_axis):
    """Channel of each flat (C order) position; all 0 without an axis."""
    positions = np.asarray(positions, dtype=np.int64)
    if channel_axis is None:
        return np.zeros(positions.shape, dtype=np.int64)
    stride = int(np.prod(shape[channel_axis + 1:], dtype=np.int64))
    return (positions // stride) % int(shape[channel_axis])


def cluster_indices(values, channels, n_channels):
    """Codebooks and cluster indices of values grouped by channel.

    Args:
        values: Stored values (1-D array).
        channels: Channel of each value (1-D int array, in
            `[0, n_channels)`).
        n_channels: Number of codebooks (1 for a per-tensor codebook).

    Returns:
        `(codebook, indices)`: a `(n_channels, K)` array whose row `c` holds
        channel `c`'s distinct values ascending (padded with its last value,
        or zeros for a channel without values), `K` being the largest count,
        and each value's index into its row.
    """
    values = np.asarray(values).reshape(-1)
    channels = np.asarray(channels, dtype=np.int64).reshape(-1)
    if values.size == 0:
        return np.zeros((n_channels, 0), dtype=values.dtype), np.zeros(
            0, dtype=np.int64
        )
    order = np.lexsort((values, channels))
    v, c = values[order], channels[order]
    new = np.ones(v.size, dtype=bool)
    new[1:] = (v[1:] != v[:-1]) | (c[1:] != c[:-1])
    group = np.cumsum(new) - 1
    start = np.searchsorted(c, c, side="left")
    rank = group - group[start]
    counts = np.zeros(n_channels, dtype=np.int64)
    np.maximum.at(counts, c, rank + 1)
    k = int(counts.max())
    codebook = np.zeros((n_channels, k), dtype=values.dtype)
    codebook[c[new], rank[new]] = v[new]
    for row in np.flatnonzero((counts < k) & (counts > 0)):
        codebook[row, counts[row]:] = codebook[row, counts[row] - 1]
    indices = np.empty(values.size, dtype=np.int64)
    indices[order] = rank
    return codebook, indices


@dataclasses.dataclass
class EncodedTensor:
    """A tensor coded as codebook + Huffman indices [+ Huffman gaps].

    Args:
        shape: Shape of the tensor.
        dtype: NumPy dtype name of the tensor and its codebook.
        channel_axis: Axis with one codebook per index, or `None`.
        index_bits: Gap field width when sparse, `None` when dense.
        clusters: Values per codebook (`K`).
        entries: Number of coded cluster indices (stored entries).
        gap_symbols: Number of entries in the gap table.
        sections: `{name: (bytes, nbits)}` of the bit strings.
        entropy_bits: Entropy bound of the coded streams (indices, plus
            gaps when sparse), in bits, tables and codebook not included.
    """

    shape: tuple
    dtype: str
    channel_axis: object
    index_bits: object
    clusters: int
    entries: int
    gap_symbols: int
    sections: dict
    entropy_bits: float

    @property
    def bits(self):
        """Total bits of all sections (the size of this encoding)."""
        return sum(nbits for _, nbits in self.sections.values())

    def section_bits(self):
        """Returns `{section name: bits}`."""
        return {name: nbits for name, (_, nbits) in self.sections.items()}


def encode_tensor(array, sparse=True, index_bits=None, channel_axis=None,
                  max_length=MAX_CODE_LENGTH):
    """Encodes a tensor as Deep Compression's final stage.

    Args:
        array: A NumPy array (floats or integers).
        sparse: Store only the non-zeros with their relative indices
            (`True`, the default) or every weight (`False`).
        index_bits: Bits per gap when `sparse`. Defaults to `None`: 5 for
            rank <= 2, 8 otherwise.
        channel_axis: Axis with one codebook per index (e.g. the quantized
            dimension of a per-channel int8 tensor), or `None` for one
            codebook. Defaults to `None`.
        max_length: Longest Huffman code word in bits. Defaults to 16.

    Returns:
        An `EncodedTensor`; `decode_tensor` gives the tensor back.

    Example:

    ```python
    w = np.array([[0.0, 0.5], [0.0, 0.5], [0.25, 0.0]], "float32")
    enc = encode_tensor(w)
    assert np.array_equal(decode_tensor(enc), w)
    enc.section_bits()
    ```
    """
    value = check_array(array)
    shape = tuple(int(d) for d in value.shape)
    axis = check_channel_axis(channel_axis, shape)
    rows = 1 if axis is None else shape[axis]
    flat = value.reshape(-1)
    sections = {}
    gap_symbols = 0
    if sparse:
        if index_bits is None:
            index_bits = relative_index.default_index_bits(shape)
        stream = relative_index.encode_relative(flat, index_bits)
        stored, positions = stream.values, stream.positions
    else:
        index_bits = None
        stored, positions = flat, np.arange(flat.size)
    codebook, indices = cluster_indices(
        stored, channels_of(positions, shape, axis), rows
    )
    little = codebook.astype(codebook.dtype.newbyteorder("<"))
    sections["codebook"] = (little.tobytes(), codebook.size * 8 * value.itemsize)
    index_code = HuffmanCode.from_symbols(indices, max_length)
    sections["index_table"] = index_code.pack_table()
    sections["indices"] = index_code.encode(indices)
    entropy = entropy_bits(indices)
    if sparse:
        gap_code = HuffmanCode.from_symbols(stream.gaps, max_length)
        gap_symbols = len(gap_code.symbols)
        sections["gap_table"] = gap_code.pack_table(index_bits)
        sections["gaps"] = gap_code.encode(stream.gaps)
        entropy += entropy_bits(stream.gaps)
    return EncodedTensor(
        shape=shape,
        dtype=value.dtype.name,
        channel_axis=axis,
        index_bits=index_bits,
        clusters=int(codebook.shape[1]),
        entries=int(indices.size),
        gap_symbols=gap_symbols,
        sections=sections,
        entropy_bits=entropy,
    )


def decode_tensor(encoded):
    """Rebuilds the tensor from an `EncodedTensor`'s bit strings.

    Args:
        encoded: An `EncodedTensor` made by `encode_tensor`.

    Returns:
        The tensor as a NumPy array of its shape and dtype.
    """
    if not isinstance(encoded, EncodedTensor):
        raise TypeError(
            "Expected `encoded` to be an EncodedTensor made by "
            f"`encode_tensor`. Received: encoded of type "
            f"{type(encoded).__name__}"
        )
    shape, axis = encoded.shape, encoded.channel_axis
    dtype = np.dtype(encoded.dtype)
    size = int(np.prod(shape, dtype=np.int64))
    rows = 1 if axis is None else shape[axis]
    data, _ = encoded.sections["codebook"]
    codebook = np.frombuffer(data, dtype=dtype.newbyteorder("<"))
    codebook = codebook.astype(dtype).reshape(rows, encoded.clusters)
    index_code = HuffmanCode.unpack_table(
        *encoded.sections["index_table"], encoded.clusters
    )
    indices = index_code.decode(*encoded.sections["indices"], encoded.entries)
    if encoded.index_bits is None:
        positions = np.arange(size)
        values = codebook[channels_of(positions, shape, axis), indices]
        return values.reshape(shape)
    gap_code = HuffmanCode.unpack_table(
        *encoded.sections["gap_table"], encoded.gap_symbols, encoded.index_bits
    )
    gaps = gap_code.decode(*encoded.sections["gaps"], encoded.entries)
    positions = np.cumsum(gaps + 1) - 1
    values = codebook[channels_of(positions, shape, axis), indices]
    flat = relative_index.decode_relative(gaps, values, size, dtype)
    return flat.reshape(shape)
