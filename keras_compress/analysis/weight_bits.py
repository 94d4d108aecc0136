"""Bits of one weight tensor in each encoding Deep Compression uses.

Representations (`n` weights, `b` value bits: 32 for float32, 16 for
float16, 8 for int8; `i` index bits; `e` stored entries of the relative-
index stream, i.e. non-zeros plus fillers, see
`keras_compress.analysis.relative_index`; `w(K) = ceil(log2 K)`, 0 for
`K <= 1`):

- `dense`: `b * n`.
- `sparse`: `e * (i + b)`: a gap and a value per stored entry.
- `clustered`: `n * w(K) + codebook`, `K` the distinct values (zero
  included) per codebook, the codebook `rows * K * b`.
- `sparse_clustered`: `e * (i + w(K)) + codebook`, `K` the distinct stored
  values (0 counts when there are fillers).
- `clustered_huffman`: codebook + Huffman table + Huffman-coded cluster
  indices of all `n` weights (`keras_compress.analysis.codec`,
  `sparse=False`).
- `sparse_clustered_huffman`: Deep Compression's final format: codebook +
  Huffman-coded cluster indices of the stored entries + Huffman-coded gaps,
  with both tables (`codec`, `sparse=True`).

The two Huffman sizes are lengths of real encodings (`encode_tensor`);
with `verify=True` each is decoded back and compared with the tensor. They
are `None` when a codebook has more than `2 ** max_length` values (no
Huffman code of at most `max_length` bits exists for them). `entropy_bits`
gives, for each Huffman representation, the entropy bound of its coded
streams: a lower bound on their payload, not a size (tables and codebook
not included).

Codebooks: with a `channel_axis` (a per-channel quantized int8 tensor) each
clustered representation is computed with one codebook per channel
(`rows` = channels, `K` = the largest per-channel count; that is the
cluster count reported) and with one codebook for the tensor, and the
smaller is kept (`codebooks` says which). Without one, there is one
codebook. `scale_bits` (TFLite int8 tensors: 32 bits per float32 scale) is
needed by every representation and is kept apart from `bits`; stage
totals add it (see `total_bits`).
"""

import dataclasses

import numpy as np

from keras_compress.analysis import codec
from keras_compress.analysis import relative_index
from keras_compress.analysis.coding import MAX_CODE_LENGTH
from keras_compress.analysis.coding import entropy_bits

REPRESENTATIONS = (
    "dense",
    "sparse",
    "clustered",
    "sparse_clustered",
    "clustered_huffman",
    "sparse_clustered_huffman",
)
HUFFMAN = ("clustered_huffman", "sparse_clustered_huffman")
CLUSTERED = ("clustered", "sparse_clustered") + HUFFMAN


def _width(k):
    return max(int(k) - 1, 0).bit_length()


@dataclasses.dataclass
class TensorBits:
    """Size of one weight tensor (or a total) in each representation.

    Args:
        name: Tensor name (`"total"` for a total row).
        shape: Tensor shape (`None` for a total).
        dtype: NumPy dtype name (`""` for a total).
        value_bits: Bits per stored value (`None` for a total).
        params: Number of weights.
        nonzeros: Weights that are not zero.
        distinct: Distinct values in the tensor, zero included (a total: the
            largest of its rows).
        clusters: Values per codebook of the `clustered` representation with
            the tensor's own layout: per channel when `channel_axis` is set
            (the largest per-channel count), else `distinct`.
        channel_axis: Axis of the per-channel codebooks, or `None`.
        index_bits: Gap field width of the sparse representations.
        entries: Stored entries of the relative-index stream (non-zeros plus
            fillers).
        fillers: Filler entries among them.
        bits: `{representation: bits}`, exact sizes (`None`: not available).
        entropy_bits: `{Huffman representation: bits}`, entropy bounds of
            the coded streams (bounds, not sizes).
        scale_bits: Bits of the quantization scales (0 for float tensors).
        codebooks: `{clustered representation: "tensor" or "channel"}`.
        sections: `{Huffman representation: {section: bits}}`.
    """

    name: str
    shape: object
    dtype: str
    value_bits: object
    params: int
    nonzeros: int
    distinct: int
    clusters: int
    channel_axis: object
    index_bits: object
    entries: int
    fillers: int
    bits: dict
    entropy_bits: dict
    scale_bits: int = 0
    codebooks: dict = dataclasses.field(default_factory=dict)
    sections: dict = dataclasses.field(default_factory=dict)

    @property
    def bits_per_weight(self):
        """`{representation: bits / params}` (`None` where unavailable)."""
        return {
            rep: None if b is None or not self.params else b / self.params
            for rep, b in self.bits.items()
        }

    @property
    def best(self):
        """The representation with the fewest bits (the first on ties)."""
        known = [r for r in REPRESENTATIONS if self.bits.get(r) is not None]
        return min(known, key=lambda r: self.bits[r])

    def total_bits(self, representation=None):
        """Bits of a representation plus `scale_bits`.

        Args:
            representation: A name from `REPRESENTATIONS`. Defaults to
                `None`: `best`.

        Returns:
            An int, or `None` if the representation is not available.
        """
        if representation is None:
            representation = self.best
        if representation not in REPRESENTATIONS:
            raise ValueError(
                f"Expected `representation` to be one of "
                f"{list(REPRESENTATIONS)}. Received: "
                f"representation={representation!r}"
            )
        b = self.bits.get(representation)
        return None if b is None else b + self.scale_bits

    def to_dict(self):
        """Returns the row as a JSON-compatible dict."""
        d = dataclasses.asdict(self)
        d["shape"] = None if self.shape is None else list(self.shape)
        d["bits_per_weight"] = self.bits_per_weight
        d["best"] = self.best
        return d


def tensor_bits(array, name="tensor", index_bits=None, channel_axis=None,
                max_length=MAX_CODE_LENGTH, scale_bits=0, verify=False):
    """Counts the bits of one weight tensor in every representation.

    Args:
        array: A NumPy array of floats or integers (the tensor as stored:
            float32, float16, int8, ...).
        name: Name for the row. Defaults to `"tensor"`.
        index_bits: Bits per gap of the sparse representations. Defaults to
            `None`: 5 for rank <= 2 (fully connected), 8 otherwise (conv),
            Deep Compression's choices.
        channel_axis: Axis with its own codebook per index (the quantized
            dimension of a per-channel int8 tensor), or `None`. Defaults to
            `None`.
        max_length: Longest Huffman code word, in bits. Defaults to 16.
        scale_bits: Bits of quantization parameters to report with the
            tensor. Defaults to 0.
        verify: Decode both Huffman encodings and check they give the
            tensor back. Defaults to `False`.

    Returns:
        A `TensorBits`.

    Example:

    ```python
    w = np.zeros((4, 4), "float32")
    w[0, 0], w[1, 2], w[3, 3] = 0.5, -0.25, 0.5
    t = tensor_bits(w, index_bits=4)        # Gaps 0, 5, 8: no filler.
    t.bits["dense"], t.bits["sparse"]       # (512, 3 * (4 + 32))
    t.bits["clustered"]                     # 16 * 2 + 3 * 32
    ```
    """
    value = codec.check_array(array)
    if value.size == 0:
        raise ValueError(
            "Expected `array` to have at least one element. Received: "
            f"array of shape {value.shape}"
        )
    shape = tuple(int(d) for d in value.shape)
    axis = codec.check_channel_axis(channel_axis, shape)
    if index_bits is None:
        index_bits = relative_index.default_index_bits(shape)
    index_bits = relative_index.check_index_bits(index_bits)
    flat = value.reshape(-1)
    n = flat.size
    vb = 8 * value.itemsize
    stream = relative_index.encode_relative(flat, index_bits)
    bits = {"dense": vb * n, "sparse": stream.entries * (index_bits + vb)}
    entropy, codebooks, sections = {}, {}, {}
    layouts = [None] if axis is None else [axis, None]
    clusters = None
    for layout in layouts:
        rows = 1 if layout is None else shape[layout]
        streams = {
            False: (flat, np.arange(n)),
            True: (stream.values, stream.positions),
        }
        candidates = {}
        for sparse, (stored, positions) in streams.items():
            codebook, indices = codec.cluster_indices(
                stored, codec.channels_of(positions, shape, layout), rows
            )
            k = codebook.shape[1]
            if not sparse and clusters is None:
                clusters = k
            book = rows * k * vb
            fixed = "sparse_clustered" if sparse else "clustered"
            huff = "sparse_clustered_huffman" if sparse else "clustered_huffman"
            per_entry = (index_bits if sparse else 0) + _width(k)
            candidates[fixed] = (indices.size * per_entry + book, None, None)
            bound = entropy_bits(indices)
            if sparse:
                bound += entropy_bits(stream.gaps)
            if k > 2 ** max_length:
                candidates[huff] = (None, bound, None)
                continue
            enc = codec.encode_tensor(
                value, sparse=sparse, index_bits=index_bits,
                channel_axis=layout, max_length=max_length,
            )
            if verify:
                _verify(enc, value, name)
            candidates[huff] = (enc.bits, enc.entropy_bits, enc.section_bits())
        for rep, (size, bound, parts) in candidates.items():
            if rep in bits and (size is None or (
                bits[rep] is not None and bits[rep] <= size
            )):
                continue
            bits[rep] = size
            codebooks[rep] = "tensor" if layout is None else "channel"
            if rep in HUFFMAN:
                entropy[rep] = bound
                if parts is not None:
                    sections[rep] = parts
    return TensorBits(
        name=str(name),
        shape=shape,
        dtype=value.dtype.name,
        value_bits=vb,
        params=int(n),
        nonzeros=int(np.count_nonzero(flat)),
        distinct=int(np.unique(flat).size),
        clusters=int(clusters),
        channel_axis=axis,
        index_bits=index_bits,
        entries=stream.entries,
        fillers=stream.fillers,
        bits={rep: bits[rep] for rep in REPRESENTATIONS},
        entropy_bits={rep: entropy[rep] for rep in HUFFMAN},
        scale_bits=int(scale_bits),
        codebooks={rep: codebooks[rep] for rep in CLUSTERED},
        sections=sections,
    )


def _verify(encoded, value, name):
    back = codec.decode_tensor(encoded)
    if back.shape != value.shape or not np.array_equal(back, value):
        raise RuntimeError(
            f"Decoding the encoding of tensor {name!r} did not give the "
            "tensor back; please report this as a bug."
        )


def total_of(rows, name="total"):
    """Returns a `TensorBits` summing `rows` (distinct/clusters: maxima)."""

    def add(key):
        values = [r.bits[key] for r in rows]
        return None if any(v is None for v in values) else sum(values)

    return TensorBits(
        name=name,
        shape=None,
        dtype="",
        value_bits=None,
        params=sum(r.params for r in rows),
        nonzeros=sum(r.nonzeros for r in rows),
        distinct=max((r.distinct for r in rows), default=0),
        clusters=max((r.clusters for r in rows), default=0),
        channel_axis=None,
        index_bits=None,
        entries=sum(r.entries for r in rows),
        fillers=sum(r.fillers for r in rows),
        bits={rep: add(rep) for rep in REPRESENTATIONS},
        entropy_bits={
            rep: sum(r.entropy_bits[rep] for r in rows) for rep in HUFFMAN
        },
        scale_bits=sum(r.scale_bits for r in rows),
    )
