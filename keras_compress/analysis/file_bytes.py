"""Where the bytes of a `.tflite` file go: a walk over its flatbuffer.

Every byte of the file is given to exactly one category, so the categories
sum to the file size. The walk reads the flatbuffer itself (tables, their
vtables, vectors and strings at the offsets the file holds), not a
re-serialization, so it describes the file as written by the converter.

Categories, in order:

- `weights`, `biases`, `other_constants`: the data of constant buffers.
  A constant is a bias when it is the bias input of `CONV_2D`,
  `DEPTHWISE_CONV_2D`, `FULLY_CONNECTED`, `CONV_3D`, `TRANSPOSE_CONV` or
  `CONV_3D_TRANSPOSE`; otherwise a weight when it is floating point or
  carries quantization scales (int8 weights, float16 weights going through
  `DEQUANTIZE`, sparse values going through `DENSIFY`); otherwise another
  constant (shapes, axes, paddings).
- `unreferenced_data`: data of buffers that no tensor and no metadata uses.
- `sparsity`: sparse index metadata (traversal order, block map, dimension
  metadata, segment and index arrays).
- `quant_scales`, `quant_zero_points`: the scale (float32) and zero point
  (int64) vectors of quantization parameters; `quant_other`: the
  quantization tables themselves and their min/max vectors and details.
- `tensor_names`, `shapes`, `shape_signatures`: those fields of tensors
  (strings and int32 vectors, with their 4-byte length prefixes).
- `tensor_tables`: the tensor tables (type, buffer index, offsets to the
  fields above) and each subgraph's vector of them.
- `operators`: operator tables, their input/output vectors, operator codes.
- `operator_options`: builtin options tables and custom options. Of the
  option tables, the sub-vectors of `ReshapeOptions`, `SqueezeOptions`,
  `BucketizeOptions`, `ConcatEmbeddingsOptions` and the strings of
  `VarHandleOptions` are followed; those of rarer options (StableHLO ones)
  end up in `padding`.
- `buffer_table`: buffer tables, the vector of them and the 4-byte length
  prefix of each data vector (an empty buffer costs only this category).
- `metadata`: metadata entries, their names and the data of their buffers
  (`min_runtime_version`, `CONVERSION_METADATA`, ...).
- `signature_defs`: signature definitions and their tensor maps.
- `model_header`: root offset and file identifier, the model table, its
  description, subgraph tables with their names and input/output vectors.
- `vtables`: flatbuffer vtables (shared vtables counted once).
- `padding`: every byte not claimed by the above: alignment padding
  (buffers are 16-byte aligned) and anything the walk does not follow.
"""

import dataclasses
import gzip
import os
import struct

import numpy as np

from keras_compress import _tflite

CATEGORIES = (
    "weights",
    "biases",
    "other_constants",
    "unreferenced_data",
    "sparsity",
    "quant_scales",
    "quant_zero_points",
    "quant_other",
    "tensor_names",
    "shapes",
    "shape_signatures",
    "tensor_tables",
    "operators",
    "operator_options",
    "buffer_table",
    "metadata",
    "signature_defs",
    "model_header",
    "vtables",
    "padding",
)
_INDEX = {name: i + 1 for i, name in enumerate(CATEGORIES)}

# Input position of the bias of the operators that have one.
_BIAS_INPUT = {
    "CONV_2D": 2,
    "DEPTHWISE_CONV_2D": 2,
    "FULLY_CONNECTED": 2,
    "CONV_3D": 2,
    "TRANSPOSE_CONV": 3,
    "CONV_3D_TRANSPOSE": 3,
}
_T = _tflite.schema.TensorType
_FLOAT_TYPES = {_T.FLOAT32, _T.FLOAT16, _T.FLOAT64, _T.BFLOAT16}

# Vector and string fields of builtin option tables: vtable offset -> kind.
_OPTION_FIELDS = {
    "ReshapeOptions": {4: ("vector", 4)},
    "SqueezeOptions": {4: ("vector", 4)},
    "BucketizeOptions": {4: ("vector", 4)},
    "ConcatEmbeddingsOptions": {6: ("vector", 4), 8: ("vector", 4)},
    "VarHandleOptions": {4: ("string", None), 6: ("string", None)},
}
_OPTION_NAMES = {
    v: k
    for k, v in vars(_tflite.schema.BuiltinOptions).items()
    if not k.startswith("_")
}
_SEGMENT_ELEMENT_SIZE = {1: 4, 2: 2, 3: 1}  # Int32Vector, Uint16Vector, Uint8Vector.


@dataclasses.dataclass
class FileBreakdown:
    """The bytes of a `.tflite` file, by what they hold.

    Args:
        name: File name, or `"<bytes>"`.
        file_bytes: Size of the file.
        gzip_bytes: Size of the file compressed with gzip (level 9).
        categories: Dict from category name (see
            `keras_compress.analysis.file_bytes.CATEGORIES`) to bytes, in
            that order; the values sum to `file_bytes`.

    Example:

    ```python
    b = keras_compress.analysis.file_breakdown("model.tflite")
    print(b)                          # aligned table
    b.categories["quant_zero_points"]
    ```
    """

    name: str
    file_bytes: int
    gzip_bytes: int
    categories: dict

    def table(self):
        """Returns the breakdown as an aligned text table."""
        width = max(len(name) for name in self.categories)
        lines = [
            f"Bytes of {self.name!r}: {self.file_bytes:,} "
            f"(gzip {self.gzip_bytes:,})",
            "-" * (width + 20),
        ]
        for name, count in self.categories.items():
            share = 100.0 * count / max(self.file_bytes, 1)
            lines.append(f"{name.ljust(width)}  {count:>9,}  {share:5.1f}%")
        return "\n".join(lines)

    def __str__(self):
        return self.table()

    def to_dict(self):
        """Returns the breakdown as a JSON-compatible dict."""
        return dataclasses.asdict(self)


def file_breakdown(tflite):
    """Returns where the bytes of a `.tflite` file go.

    Args:
        tflite: `.tflite` content as bytes, or a path (`str`/`os.PathLike`).

    Returns:
        A `FileBreakdown` whose `categories` sum exactly to the file size.

    Raises:
        ValueError: if the file is missing, corrupt or truncated.

    Example:

    ```python
    from keras_compress.analysis import file_breakdown

    print(file_breakdown(keras_compress.export.to_tflite(model)))
    ```
    """
    data, model = _tflite.load_model_bytes(tflite, "tflite")
    if isinstance(tflite, (str, os.PathLike)):
        name = os.path.basename(os.fspath(tflite))
    else:
        name = "<bytes>"
    walker = _Walker(data, _buffer_categories(model))
    walker.model(walker.u32(0))
    owner = walker.owner
    counts = np.bincount(owner, minlength=len(CATEGORIES) + 1)
    categories = {c: int(counts[_INDEX[c]]) for c in CATEGORIES}
    categories["padding"] += int(counts[0])
    return FileBreakdown(
        name=name,
        file_bytes=len(data),
        gzip_bytes=len(gzip.compress(data, compresslevel=9, mtime=0)),
        categories=categories,
    )


def _buffer_categories(model):
    """Category of the data of each buffer index (default: unreferenced)."""
    codes = model.operatorCodes or []
    found = {}
    for graph in model.subgraphs:
        tensors = graph.tensors or []
        for op in graph.operators or []:
            op_name = _tflite.builtin_op_name(codes[op.opcodeIndex])
            for j, i in enumerate(_ids(op.inputs)):
                if i < 0:
                    continue
                tensor = tensors[i]
                if _BIAS_INPUT.get(op_name) == j:
                    kind = "biases"
                else:
                    kind = _constant_kind(tensor)
                found.setdefault(tensor.buffer, kind)
        for tensor in tensors:
            found.setdefault(tensor.buffer, _constant_kind(tensor))
    for entry in model.metadata or []:
        found[entry.buffer] = "metadata"
    return found


def _constant_kind(tensor):
    q = tensor.quantization
    quantized = q is not None and q.scale is not None and len(q.scale) > 0
    if tensor.type in _FLOAT_TYPES or quantized:
        return "weights"
    return "other_constants"


def _ids(values):
    return [] if values is None else [int(v) for v in values]


class _Walker:
    """Claims every byte the flatbuffer's objects occupy for a category.

    The first claim of a byte wins, so shared vtables count once.
    """

    def __init__(self, data, buffer_kinds):
        self.data = data
        self.buffer_kinds = buffer_kinds
        self.owner = np.zeros(len(data), dtype=np.uint8)

    # -- raw reads -----------------------------------------------------------

    def u32(self, pos):
        return struct.unpack_from("<I", self.data, pos)[0]

    def u16(self, pos):
        return struct.unpack_from("<H", self.data, pos)[0]

    def claim(self, start, length, category):
        span = self.owner[start: start + length]
        span[span == 0] = _INDEX[category]

    # -- flatbuffer objects --------------------------------------------------

    def table(self, pos, category):
        """Claims the table at `pos` and its vtable; returns a field lookup."""
        vtable = pos - struct.unpack_from("<i", self.data, pos)[0]
        vtable_size = self.u16(vtable)
        self.claim(vtable, vtable_size, "vtables")
        self.claim(pos, self.u16(vtable + 2), category)

        def field(slot):
            if slot >= vtable_size:
                return None
            rel = self.u16(vtable + slot)
            return pos + rel if rel else None

        return field

    def target(self, field_pos):
        return None if field_pos is None else field_pos + self.u32(field_pos)

    def vector(self, field_pos, element_size, category, prefix=None):
        """Claims a scalar vector; returns `(start of elements, length)`."""
        start = self.target(field_pos)
        if start is None:
            return None, 0
        n = self.u32(start)
        self.claim(start, 4, prefix or category)
        self.claim(start + 4, n * element_size, category)
        return start + 4, n

    def string(self, field_pos, category):
        start = self.target(field_pos)
        if start is not None:
            self.claim(start, 4 + self.u32(start) + 1, category)

    def tables(self, field_pos, category):
        """Claims a vector of tables; returns the tables' positions."""
        start, n = self.vector(field_pos, 4, category)
        if start is None:
            return []
        return [start + 4 * k + self.u32(start + 4 * k) for k in range(n)]

    def u8(self, field_pos, default=0):
        if field_pos is None:
            return default
        return self.data[field_pos]

    # -- the TFLite schema ---------------------------------------------------

    def model(self, pos):
        self.claim(0, 8, "model_header")  # Root offset, "TFL3".
        f = self.table(pos, "model_header")
        for code in self.tables(f(6), "operators"):
            self.string(self.table(code, "operators")(6), "operators")
        for graph in self.tables(f(8), "model_header"):
            self.subgraph(graph)
        self.string(f(10), "model_header")
        for k, buffer in enumerate(self.tables(f(12), "buffer_table")):
            self.buffer(k, buffer)
        self.vector(f(14), 4, "metadata")
        for entry in self.tables(f(16), "metadata"):
            self.string(self.table(entry, "metadata")(4), "metadata")
        for signature in self.tables(f(18), "signature_defs"):
            g = self.table(signature, "signature_defs")
            for slot in (4, 6):
                for tensor_map in self.tables(g(slot), "signature_defs"):
                    self.string(self.table(tensor_map, "signature_defs")(4),
                                "signature_defs")
            self.string(g(8), "signature_defs")
        for group in self.tables(f(20), "buffer_table"):
            self.string(self.table(group, "buffer_table")(4), "buffer_table")
        for external in self.tables(f(22), "buffer_table"):
            self.string(self.table(external, "buffer_table")(12), "buffer_table")

    def subgraph(self, pos):
        f = self.table(pos, "model_header")
        for tensor in self.tables(f(4), "tensor_tables"):
            self.tensor(tensor)
        self.vector(f(6), 4, "model_header")
        self.vector(f(8), 4, "model_header")
        for op in self.tables(f(10), "operators"):
            self.operator(op)
        self.string(f(12), "model_header")

    def tensor(self, pos):
        f = self.table(pos, "tensor_tables")
        self.vector(f(4), 4, "shapes")
        self.string(f(10), "tensor_names")
        quantization = self.target(f(12))
        if quantization is not None:
            self.quantization(quantization)
        sparsity = self.target(f(16))
        if sparsity is not None:
            self.sparsity(sparsity)
        self.vector(f(18), 4, "shape_signatures")
        for variant in self.tables(f(22), "tensor_tables"):
            self.vector(self.table(variant, "tensor_tables")(4), 4, "tensor_tables")

    def quantization(self, pos):
        f = self.table(pos, "quant_other")
        self.vector(f(4), 4, "quant_other")
        self.vector(f(6), 4, "quant_other")
        self.vector(f(8), 4, "quant_scales")
        self.vector(f(10), 8, "quant_zero_points")
        details = self.target(f(14))
        if details is not None:
            # CustomQuantization (1) holds a byte vector; the block-wise
            # ones an int32 vector at slot 10.
            kind = self.u8(f(12))
            g = self.table(details, "quant_other")
            if kind == 1:
                self.vector(g(4), 1, "quant_other")
            else:
                self.vector(g(10), 4, "quant_other")

    def sparsity(self, pos):
        f = self.table(pos, "sparsity")
        self.vector(f(4), 4, "sparsity")
        self.vector(f(6), 4, "sparsity")
        for dim in self.tables(f(8), "sparsity"):
            g = self.table(dim, "sparsity")
            for type_slot, value_slot in ((8, 10), (12, 14)):
                target = self.target(g(value_slot))
                if target is None:
                    continue
                size = _SEGMENT_ELEMENT_SIZE.get(self.u8(g(type_slot)), 1)
                self.vector(self.table(target, "sparsity")(4), size, "sparsity")

    def operator(self, pos):
        f = self.table(pos, "operators")
        for slot in (6, 8, 20):
            self.vector(f(slot), 4, "operators")
        self.vector(f(18), 1, "operators")
        options = self.target(f(12))
        if options is not None:
            g = self.table(options, "operator_options")
            kind = _OPTION_NAMES.get(self.u8(f(10)))
            for slot, (what, size) in _OPTION_FIELDS.get(kind, {}).items():
                if what == "vector":
                    self.vector(g(slot), size, "operator_options")
                else:
                    self.string(g(slot), "operator_options")
        self.vector(f(14), 1, "operator_options")
        options = self.target(f(28))
        if options is not None:
            self.table(options, "operator_options")

    def buffer(self, index, pos):
        f = self.table(pos, "buffer_table")
        kind = self.buffer_kinds.get(index, "unreferenced_data")
        self.vector(f(4), 1, kind, prefix="buffer_table")
        offset_pos, size_pos = f(6), f(8)
        if offset_pos is not None and size_pos is not None:
            offset = struct.unpack_from("<Q", self.data, offset_pos)[0]
            size = struct.unpack_from("<Q", self.data, size_pos)[0]
            if offset > 1 and size > 0:
                self.claim(offset, size, kind)
