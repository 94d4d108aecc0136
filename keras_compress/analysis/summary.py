"""Result objects of `keras_compress.analysis.summarize`.

A `Summary` holds one `LayerStats` row per Keras layer or TFLite operator and
a total row. It prints as an aligned table and converts to and from plain
dicts and JSON, so analyses can be stored next to benchmark results.

Byte conventions (the same for every row and for the total):

- `bytes_float32 = 4 * params`: every parameter as a float32.
- `bytes_int8 = params`: one byte per parameter. Quantization scales and zero
  points are not counted.
- `bytes_sparse = 4 * nonzeros + ceil(params / 8)`: the non-zero values as
  float32 plus a one-bit-per-parameter mask telling where they go.
- `bytes_stored` (TFLite only, `None` for Keras): the bytes the `.tflite`
  file really holds in the buffers of the operator's constant tensors, in
  their stored dtype (int8 weights 1 byte, int32 biases 4 bytes, float16 2
  bytes, sparse-encoded tensors only their stored values, ...).

Human-readable sizes in the table use 1 KB = 1024 bytes.
"""

import dataclasses
import math

from keras_compress import _io

_FIELDS = (
    "name",
    "kind",
    "output_shape",
    "params",
    "nonzeros",
    "sparsity",
    "macs",
    "bytes_float32",
    "bytes_int8",
    "bytes_sparse",
    "bytes_stored",
    "binary_macs",
)


@dataclasses.dataclass
class LayerStats:
    """Statistics of one Keras layer or one TFLite operator.

    Args:
        name: Layer name (nested layers as `"outer/inner"`) or, for TFLite,
            the name of the operator's first output tensor.
        kind: Keras class name (e.g. `"Conv2D"`) or TFLite operator name
            (e.g. `"CONV_2D"`).
        output_shape: Shape of the first output as a tuple, with the batch
            dimension as `None` when it is dynamic; `None` when unknown.
        params: Number of parameters (weight elements).
        nonzeros: Number of parameters that are not zero.
        sparsity: `1 - nonzeros / params`, `0.0` when `params == 0`.
        macs: Multiply-accumulates per inference at batch size 1, or `None`
            when they cannot be known (shapes unknown).
        bytes_float32: `4 * params`.
        bytes_int8: `params` (scales not counted).
        bytes_sparse: `4 * nonzeros + ceil(params / 8)`.
        bytes_stored: Bytes held in the `.tflite` for the operator's
            constants; `None` for Keras layers. Defaults to `None`.
        binary_macs: How many of `macs` multiply by one-bit weights
            (`BinaryDense`, `BinaryConv2D` and the packed `KC_BINARY_*`
            operators: XOR/popcount or add/subtract, no multiplier).
            Defaults to 0.
    """

    name: str
    kind: str
    output_shape: object
    params: int
    nonzeros: int
    sparsity: float
    macs: object
    bytes_float32: int
    bytes_int8: int
    bytes_sparse: int
    bytes_stored: object = None
    binary_macs: int = 0

    @classmethod
    def build(cls, name, kind, output_shape, params, nonzeros, macs,
              bytes_stored=None, binary_macs=0):
        """Creates a row, deriving sparsity and the byte columns.

        Args:
            name: Row name.
            kind: Layer class or operator name.
            output_shape: Output shape tuple or `None`.
            params: Number of parameters.
            nonzeros: Number of non-zero parameters.
            macs: MACs per inference or `None`.
            bytes_stored: Stored bytes (TFLite) or `None`. Defaults to `None`.
            binary_macs: MACs with one-bit weights. Defaults to 0.

        Returns:
            A `LayerStats`.
        """
        params = int(params)
        nonzeros = int(nonzeros)
        return cls(
            name=str(name),
            kind=str(kind),
            output_shape=_to_tuple(output_shape),
            params=params,
            nonzeros=nonzeros,
            sparsity=_sparsity(params, nonzeros),
            macs=None if macs is None else int(macs),
            bytes_float32=4 * params,
            bytes_int8=params,
            bytes_sparse=4 * nonzeros + math.ceil(params / 8),
            bytes_stored=None if bytes_stored is None else int(bytes_stored),
            binary_macs=int(binary_macs),
        )

    def to_dict(self):
        """Returns the row as a JSON-compatible dict."""
        d = {f: getattr(self, f) for f in _FIELDS}
        d["output_shape"] = _to_list(self.output_shape)
        return d

    @classmethod
    def from_dict(cls, d):
        """Rebuilds a row from `to_dict()` output.

        Args:
            d: A dict with one key per field.

        Returns:
            A `LayerStats` equal to the one that produced `d`.
        """
        if not isinstance(d, dict):
            raise TypeError(
                "Expected `d` to be a dict made by `LayerStats.to_dict()`. "
                f"Received: d of type {type(d).__name__}"
            )
        optional = ("bytes_stored", "binary_macs")
        missing = [f for f in _FIELDS if f not in d and f not in optional]
        if missing:
            raise ValueError(
                f"Expected `d` to have the keys {list(_FIELDS)}. "
                f"Received: d without {missing}"
            )
        values = {f: d.get(f) for f in _FIELDS}
        values["output_shape"] = _to_tuple(values["output_shape"])
        values["binary_macs"] = values["binary_macs"] or 0
        return cls(**values)


def make_total(rows, with_stored):
    """Returns the `"total"` row summing `rows`.

    Params, non-zeros, MACs and stored bytes are sums; the other byte columns
    apply the formulas to the totals. `macs` is `None` if any row's MACs are
    unknown; `bytes_stored` is summed only when `with_stored` (TFLite).
    """
    macs = 0
    for r in rows:
        if r.macs is None:
            macs = None
            break
        macs += r.macs
    stored = None
    if with_stored:
        stored = sum(r.bytes_stored or 0 for r in rows)
    return LayerStats.build(
        "total",
        "",
        None,
        sum(r.params for r in rows),
        sum(r.nonzeros for r in rows),
        macs,
        stored,
        sum(r.binary_macs for r in rows),
    )


@dataclasses.dataclass
class Summary:
    """Per-layer (Keras) or per-operator (TFLite) statistics of a model.

    Args:
        source: `"keras"` or `"tflite"`.
        name: Model name (Keras) or file name (TFLite).
        rows: List of `LayerStats`, in model order.
        totals: A `LayerStats` named `"total"` summing the rows.
        file_bytes: Size of the `.tflite` in bytes; `None` for Keras.
        gzip_bytes: Size of the `.tflite` compressed with gzip (level 9), the
            size a sparse or clustered model takes in an app download or a
            compressed flash image; `None` for Keras.

    Example:

    ```python
    s = keras_compress.analysis.summarize(model)
    print(s)                       # aligned table
    s.totals.macs, s.totals.params
    s.to_json("summary.json")
    ```
    """

    source: str
    name: str
    rows: list
    totals: LayerStats
    file_bytes: object = None
    gzip_bytes: object = None

    def table(self):
        """Returns the statistics as an aligned text table."""
        tflite = self.source == "tflite"
        header = [
            "Name",
            "Kind",
            "Output shape",
            "Params",
            "Nonzero",
            "Sparsity",
            "MACs",
            "fp32",
            "int8",
            "sparse",
        ]
        if tflite:
            header.append("stored")
        binary = self.totals.binary_macs > 0
        if binary:
            header.append("binary MACs")
        body = [_cells(r, tflite, binary) for r in self.rows]
        total = _cells(self.totals, tflite, binary)
        widths = [len(h) for h in header]
        for line in body + [total]:
            for i, cell in enumerate(line):
                widths[i] = max(widths[i], len(cell))
        left = 3  # Name, Kind and Output shape are left-aligned.

        def fmt(cells):
            out = []
            for i, cell in enumerate(cells):
                out.append(cell.ljust(widths[i]) if i < left
                           else cell.rjust(widths[i]))
            return "  ".join(out).rstrip()

        rule = "-" * len(fmt(header))
        title = f"Summary of {self.source} model {self.name!r}"
        if self.file_bytes is not None:
            title += (f" (file: {_human_bytes(self.file_bytes)}, "
                      f"{self.file_bytes:,} bytes")
            if self.gzip_bytes is not None:
                title += f"; gzip: {_human_bytes(self.gzip_bytes)}"
            title += ")"
        lines = [title, rule, fmt(header), rule]
        lines += [fmt(c) for c in body]
        lines += [rule, fmt(total)]
        return "\n".join(lines)

    def __str__(self):
        return self.table()

    def to_dict(self):
        """Returns the summary as a JSON-compatible dict."""
        return {
            "source": self.source,
            "name": self.name,
            "file_bytes": self.file_bytes,
            "gzip_bytes": self.gzip_bytes,
            "rows": [r.to_dict() for r in self.rows],
            "totals": self.totals.to_dict(),
        }

    @classmethod
    def from_dict(cls, d):
        """Rebuilds a `Summary` from `to_dict()` (or parsed `to_json()`).

        Args:
            d: A dict made by `Summary.to_dict()`.

        Returns:
            A `Summary` equal to the one that produced `d`.
        """
        if not isinstance(d, dict):
            raise TypeError(
                "Expected `d` to be a dict made by `Summary.to_dict()`. "
                f"Received: d of type {type(d).__name__}"
            )
        keys = ("source", "name", "rows", "totals")
        missing = [k for k in keys if k not in d]
        if missing:
            raise ValueError(
                f"Expected `d` to have the keys {list(keys)}. "
                f"Received: d without {missing}"
            )
        return cls(
            source=d["source"],
            name=d["name"],
            rows=[LayerStats.from_dict(r) for r in d["rows"]],
            totals=LayerStats.from_dict(d["totals"]),
            file_bytes=d.get("file_bytes"),
            gzip_bytes=d.get("gzip_bytes"),
        )

    def to_json(self, path=None):
        """Returns the summary as a JSON string, optionally writing it.

        Args:
            path: Optional file path (`str` or `os.PathLike`). When given, the
                JSON is written atomically (temporary file in the same folder,
                then `os.replace`). Defaults to `None`.

        Returns:
            The JSON string.
        """
        return _io.json_text(self.to_dict(), path)


def _sparsity(params, nonzeros):
    if params <= 0:
        return 0.0
    return 1.0 - nonzeros / params


def _to_tuple(shape):
    if isinstance(shape, (list, tuple)):
        return tuple(_to_tuple(s) for s in shape)
    if shape is None:
        return None
    return int(shape)


def _to_list(shape):
    if isinstance(shape, (list, tuple)):
        return [_to_list(s) for s in shape]
    return shape


def _count(n):
    return "?" if n is None else f"{n:,}"


def _human_bytes(n):
    if n is None:
        return "-"
    if n < 1024:
        return f"{n} B"
    value = float(n)
    for unit in ("KB", "MB", "GB", "TB"):
        value /= 1024.0
        if value < 1024 or unit == "TB":
            return f"{value:.1f} {unit}"


def _shape_text(shape):
    if shape is None:
        return "?"
    if shape and isinstance(shape[0], tuple):
        return ", ".join(_shape_text(s) for s in shape)
    dims = ["None" if d is None else str(d) for d in shape]
    if len(dims) == 1:
        return f"({dims[0]},)"
    return "(" + ", ".join(dims) + ")"


def _short(text, width=60):
    if len(text) <= width:
        return text
    keep = width - 3
    return text[: keep // 2] + "..." + text[len(text) - (keep - keep // 2):]


def _cells(r, tflite, binary=False):
    cells = [
        _short(r.name),
        r.kind,
        "" if r.name == "total" and r.output_shape is None
        else _shape_text(r.output_shape),
        _count(r.params),
        _count(r.nonzeros),
        f"{100.0 * r.sparsity:.1f}%",
        _count(r.macs),
        _human_bytes(r.bytes_float32),
        _human_bytes(r.bytes_int8),
        _human_bytes(r.bytes_sparse),
    ]
    if tflite:
        cells.append(_human_bytes(r.bytes_stored))
    if binary:
        cells.append(_count(r.binary_macs))
    return cells
