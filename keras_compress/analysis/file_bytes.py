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

import numpy as np

from keras_compress import _tflite
from keras_compress.analysis._flatbuffer_walk import Walker
from keras_compress.analysis._tflite_tensors import FLOAT_TYPES
from keras_compress.analysis._tflite_tensors import ids

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
    walker = Walker(data, _buffer_categories(model), _INDEX)
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
            for j, i in enumerate(ids(op.inputs)):
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
    if tensor.type in FLOAT_TYPES or quantized:
        return "weights"
    return "other_constants"

