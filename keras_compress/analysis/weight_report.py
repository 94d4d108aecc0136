"""`weight_bits`: Deep Compression size accounting of a whole model.

Which tensors are measured is documented in
`keras_compress.analysis.weight_sources`; how each is counted, in
`keras_compress.analysis.weight_bits`.
"""

import dataclasses

from keras_compress import _io
from keras_compress.analysis import weight_sources
from keras_compress.analysis.coding import MAX_CODE_LENGTH
from keras_compress.analysis.weight_bits import HUFFMAN
from keras_compress.analysis.weight_bits import REPRESENTATIONS
from keras_compress.analysis.weight_bits import tensor_bits
from keras_compress.analysis.weight_bits import total_of

_SHORT = {
    "dense": "dense",
    "sparse": "sparse",
    "clustered": "clust",
    "sparse_clustered": "sp+clust",
    "clustered_huffman": "clust+huff",
    "sparse_clustered_huffman": "sp+cl+huff",
}


@dataclasses.dataclass
class WeightBits:
    """Per-tensor bit accounting of a model's weights.

    Args:
        source: `"keras"`, `"tflite"` or `"arrays"`.
        name: Model or file name.
        rows: One `TensorBits` per weight tensor, in model order.
        totals: A `TensorBits` named `"total"` summing the rows.

    Example:

    ```python
    report = keras_compress.analysis.weight_bits(model)
    print(report)             # bits per weight of each representation
    report.totals.best, report.totals.bits["sparse_clustered_huffman"]
    report.to_json("weight_bits.json")
    ```
    """

    source: str
    name: str
    rows: list
    totals: object

    def table(self):
        """Returns the rows as an aligned text table (bits per weight)."""
        header = ["Name", "Shape", "Params", "Nonzero", "Distinct", "K"]
        header += [_SHORT[r] for r in REPRESENTATIONS]
        header += ["H bound", "best", "bytes"]
        lines = [_cells(r) for r in self.rows]
        total = _cells(self.totals)
        widths = [max(len(line[i]) for line in [header, total] + lines)
                  for i in range(len(header))]

        def fmt(cells):
            return "  ".join(
                c.ljust(widths[i]) if i < 2 or i == len(cells) - 2
                else c.rjust(widths[i])
                for i, c in enumerate(cells)
            ).rstrip()

        rule = "-" * len(fmt(header))
        title = (f"Weight bits of {self.source} model {self.name!r} (bits per "
                 "weight; H bound: entropy bound of the sp+cl+huff streams, "
                 "tables excluded; bytes: best + scales)")
        return "\n".join(
            [title, rule, fmt(header), rule] + [fmt(c) for c in lines]
            + [rule, fmt(total)]
        )

    def __str__(self):
        return self.table()

    def to_dict(self):
        """Returns the report as a JSON-compatible dict."""
        return {
            "source": self.source,
            "name": self.name,
            "rows": [r.to_dict() for r in self.rows],
            "totals": self.totals.to_dict(),
        }

    def to_json(self, path=None):
        """Returns the report as JSON, optionally writing it atomically.

        Args:
            path: Optional file path (`str` or `os.PathLike`). Defaults to
                `None`.

        Returns:
            The JSON string.
        """
        return _io.json_text(self.to_dict(), path)


def weight_bits(obj, index_bits=None, max_length=MAX_CODE_LENGTH,
                verify=False):
    """Counts the bits of a model's weights in Deep Compression's encodings.

    Every size is exact for the documented format: dense, sparse with
    relative indices (Deep Compression section 3), clustered (codebook +
    fixed-width indices), and clustered + Huffman with and without the
    sparse stream, the Huffman ones being lengths of real encodings. The
    entropy bounds are labelled as bounds.

    Args:
        obj: A built `keras.Model` (its prunable kernels), a path to a
            `.keras` file, `.tflite` bytes or a path to a `.tflite` file
            (its float32/float16/int8 constant tensors of rank >= 2), or a
            mapping `{name: array}`.
        index_bits: Bits per gap of the sparse representations, for every
            tensor. Defaults to `None`: 5 for rank <= 2, 8 for convolutions.
        max_length: Longest Huffman code word in bits. Defaults to 16.
        verify: Decode every Huffman encoding and check it gives the tensor
            back (slower). Defaults to `False`.

    Returns:
        A `WeightBits`.

    Raises:
        TypeError: if `obj` is none of the accepted types.
        ValueError: if a path does not exist, a file is corrupt, or the
            model has no weight tensor.

    Example:

    ```python
    report = weight_bits({"w": np.eye(64, dtype="float32")})
    # Gaps of 64 zeros need 2 fillers each with 5-bit gaps:
    report.rows[0].bits["sparse"]       # (64 + 63 * 2) * (5 + 32) bits
    ```

    Reference:
        Han, Mao & Dally, "Deep Compression: Compressing Deep Neural
        Networks with Pruning, Trained Quantization and Huffman Coding",
        ICLR 2016.
    """
    source, name, tensors = weight_sources.read_weights(obj)
    if not tensors:
        raise ValueError(
            "Expected `obj` to have at least one weight tensor (a prunable "
            "kernel of a Keras model, or a constant of rank >= 2 in a "
            f".tflite). Received: {source} {name!r} without one"
        )
    rows = [
        tensor_bits(t.value, t.name, index_bits=index_bits,
                    channel_axis=t.channel_axis, max_length=max_length,
                    scale_bits=t.scale_bits, verify=verify)
        for t in tensors
    ]
    return WeightBits(source=source, name=name, rows=rows,
                      totals=total_of(rows))


def _bpw(bits, params):
    return "-" if bits is None or not params else f"{bits / params:.3f}"


def _cells(r):
    shape = "" if r.shape is None else "x".join(str(d) for d in r.shape)
    name = r.name if len(r.name) <= 40 else "..." + r.name[-37:]
    bound = sum(r.entropy_bits[h] for h in HUFFMAN[1:])
    best = r.best
    return [
        name, shape, f"{r.params:,}", f"{r.nonzeros:,}", f"{r.distinct:,}",
        f"{r.clusters:,}",
    ] + [_bpw(r.bits[rep], r.params) for rep in REPRESENTATIONS] + [
        _bpw(bound, r.params), _SHORT[best],
        f"{-(-r.total_bits(best) // 8):,}",
    ]
