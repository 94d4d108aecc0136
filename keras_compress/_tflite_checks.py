"""What the interpreters trust in a `.tflite`, checked before they see it.

`_tflite.parse` has already proven every index in bounds; these checks go
on to what LiteRT and TensorFlow Lite Micro read without checking (or check
only in some builds): each builtin operator's input and output counts,
that every tensor an operator reads exists when it runs, that constant
tensors hold exactly the bytes their shape and type need, quantization
parameters against the quantized dimension, sparsity metadata against the
dense shape, the rank of convolution and fully-connected weights, and the
subgraph indices of control flow. Each failure is a
`ValueError` message naming the subgraph, operator and tensor.
"""

import numpy as np

from ai_edge_litert import schema_py_generated as schema

_T = schema.TensorType
# Bytes per element of each fixed-size tensor type.
_ITEM_BYTES = {
    _T.FLOAT32: 4, _T.FLOAT16: 2, _T.INT32: 4, _T.UINT8: 1, _T.INT64: 8,
    _T.BOOL: 1, _T.INT16: 2, _T.COMPLEX64: 8, _T.INT8: 1, _T.FLOAT64: 8,
    _T.COMPLEX128: 16, _T.UINT64: 8, _T.UINT32: 4, _T.UINT16: 2,
}
_PACKED_TYPES = {getattr(_T, name) for name in ("INT4", "INT2") if hasattr(_T, name)}
_MAX_RANK = 8
_MAX_ELEMENTS = 1 << 31

# (fewest inputs, most inputs, fewest outputs, most outputs) of the
# builtins the exporters write and common models use; None: no bound. An
# optional input may be given as -1.
_ARITY = {
    "ADD": (2, 2, 1, 1), "SUB": (2, 2, 1, 1), "MUL": (2, 2, 1, 1),
    "DIV": (2, 2, 1, 1), "MAXIMUM": (2, 2, 1, 1), "MINIMUM": (2, 2, 1, 1),
    "SQUARED_DIFFERENCE": (2, 2, 1, 1), "POW": (2, 2, 1, 1),
    "GREATER": (2, 2, 1, 1), "GREATER_EQUAL": (2, 2, 1, 1), "LESS": (2, 2, 1, 1),
    "LESS_EQUAL": (2, 2, 1, 1), "EQUAL": (2, 2, 1, 1), "NOT_EQUAL": (2, 2, 1, 1),
    "CONV_2D": (2, 3, 1, 1), "DEPTHWISE_CONV_2D": (2, 3, 1, 1),
    "TRANSPOSE_CONV": (3, 4, 1, 1), "FULLY_CONNECTED": (2, 3, 1, 2),
    "BATCH_MATMUL": (2, 2, 1, 1),
    "AVERAGE_POOL_2D": (1, 1, 1, 1), "MAX_POOL_2D": (1, 1, 1, 1),
    "L2_POOL_2D": (1, 1, 1, 1),
    "QUANTIZE": (1, 1, 1, 1), "DEQUANTIZE": (1, 1, 1, 1), "DENSIFY": (1, 1, 1, 1),
    "RELU": (1, 1, 1, 1), "RELU6": (1, 1, 1, 1), "RELU_N1_TO_1": (1, 1, 1, 1),
    "LOGISTIC": (1, 1, 1, 1), "TANH": (1, 1, 1, 1), "HARD_SWISH": (1, 1, 1, 1),
    "LEAKY_RELU": (1, 1, 1, 1), "ELU": (1, 1, 1, 1), "GELU": (1, 1, 1, 1),
    "PRELU": (2, 2, 1, 1), "SOFTMAX": (1, 1, 1, 1), "LOG_SOFTMAX": (1, 1, 1, 1),
    "EXP": (1, 1, 1, 1), "LOG": (1, 1, 1, 1), "SQRT": (1, 1, 1, 1),
    "RSQRT": (1, 1, 1, 1), "ABS": (1, 1, 1, 1), "NEG": (1, 1, 1, 1),
    "SQUARE": (1, 1, 1, 1), "FLOOR": (1, 1, 1, 1), "CEIL": (1, 1, 1, 1),
    "CAST": (1, 1, 1, 1), "SHAPE": (1, 1, 1, 1), "LOGICAL_NOT": (1, 1, 1, 1),
    "RESHAPE": (1, 2, 1, 1), "SQUEEZE": (1, 1, 1, 1), "EXPAND_DIMS": (2, 2, 1, 1),
    "TRANSPOSE": (2, 2, 1, 1), "PAD": (2, 2, 1, 1), "PADV2": (3, 3, 1, 1),
    "MIRROR_PAD": (2, 2, 1, 1),
    "MEAN": (2, 2, 1, 1), "SUM": (2, 2, 1, 1), "REDUCE_MAX": (2, 2, 1, 1),
    "REDUCE_MIN": (2, 2, 1, 1), "REDUCE_PROD": (2, 2, 1, 1),
    "ARG_MAX": (2, 2, 1, 1), "ARG_MIN": (2, 2, 1, 1),
    "STRIDED_SLICE": (4, 4, 1, 1), "SLICE": (3, 3, 1, 1), "GATHER": (2, 2, 1, 1),
    "GATHER_ND": (2, 2, 1, 1), "CONCATENATION": (1, None, 1, 1),
    "PACK": (1, None, 1, 1), "UNPACK": (1, 1, 1, None),
    "SPLIT": (2, 2, 1, None), "SPLIT_V": (3, 3, 1, None),
    "RESIZE_BILINEAR": (2, 2, 1, 1), "RESIZE_NEAREST_NEIGHBOR": (2, 2, 1, 1),
    "SPACE_TO_DEPTH": (1, 1, 1, 1), "DEPTH_TO_SPACE": (1, 1, 1, 1),
    "L2_NORMALIZATION": (1, 1, 1, 1), "SELECT": (3, 3, 1, 1),
    "SELECT_V2": (3, 3, 1, 1), "TILE": (2, 2, 1, 1), "BROADCAST_TO": (2, 2, 1, 1),
    "FILL": (2, 2, 1, 1), "ZEROS_LIKE": (1, 1, 1, 1), "ONE_HOT": (4, 4, 1, 1),
    "EMBEDDING_LOOKUP": (2, 2, 1, 1),
    "IF": (1, None, 0, None), "WHILE": (0, None, 0, None),
}

# Rank of the weights (input 1) of operators whose kernels index them by
# that layout without looking.
_WEIGHT_RANK = {"CONV_2D": 4, "DEPTHWISE_CONV_2D": 4, "TRANSPOSE_CONV": 4,
                "FULLY_CONNECTED": 2, "CONV_3D": 5, "CONV_3D_TRANSPOSE": 5}

# Operators whose first n inputs (None: all) have the type of their output
# in every kernel; TFLite Micro aborts the process on a mismatch.
_SAME_TYPE = {
    "ADD": 2, "SUB": 2, "MUL": 2, "DIV": 2, "MAXIMUM": 2, "MINIMUM": 2,
    "SQUARED_DIFFERENCE": 2, "CONCATENATION": None, "PACK": None,
    "RELU": 1, "RELU6": 1, "MAX_POOL_2D": 1, "AVERAGE_POOL_2D": 1, "RESHAPE": 1,
    "SQUEEZE": 1, "EXPAND_DIMS": 1, "TRANSPOSE": 1, "PAD": 1, "STRIDED_SLICE": 1,
    "MEAN": 1, "TANH": 1, "LOGISTIC": 1,
}


def check_model(model, op_name):
    """Raises `ValueError` for what an interpreter would trust and crash on.

    `op_name(operator_code)` names an operator (`_tflite.builtin_op_name`).
    """
    subgraphs = model.subgraphs
    codes = model.operatorCodes or []
    buffers = model.buffers or []
    names = [op_name(code) for code in codes]
    for g, graph in enumerate(subgraphs):
        tensors = graph.tensors or []
        constant = [_has_data(buffers, t) for t in tensors]
        empty = [_empty(t) for t in tensors]  # nothing to read
        written = {int(i) for i in _ids(graph.inputs)}
        for k, op in enumerate(graph.operators or []):
            name = names[op.opcodeIndex]
            inputs, outputs = _ids(op.inputs), _ids(op.outputs)
            where = f"operator {k} ({name}) of subgraph {g}"
            _check_arity(where, name, inputs, outputs)
            _check_types(where, name, tensors, inputs, outputs)
            rank = _WEIGHT_RANK.get(name)
            if rank is not None and len(inputs) > 1 and inputs[1] >= 0 and \
                    len(_ids(tensors[inputs[1]].shape)) != rank:
                raise ValueError(
                    f"{where} has weights (tensor {inputs[1]}) of shape "
                    f"{_ids(tensors[inputs[1]].shape)}; {name} takes rank {rank}")
            for i in inputs:
                if i >= 0 and not (constant[i] or empty[i] or i in written
                                   or tensors[i].isVariable):
                    raise ValueError(
                        f"{where} reads tensor {i}, which no earlier operator "
                        "writes and which is neither a constant nor an input")
            for i in outputs:
                if i < 0:
                    raise ValueError(f"{where} has an output index of -1")
                if constant[i]:
                    raise ValueError(f"{where} writes into constant tensor {i}")
                written.add(i)
            _check_subgraph_indices(where, op, len(subgraphs))
        for i, tensor in enumerate(tensors):
            _check_tensor(g, i, tensor, buffers)
        for i in _ids(graph.outputs):
            if not (constant[i] or empty[i] or i in written):
                raise ValueError(
                    f"subgraph {g}'s output tensor {i} is never written")


def _ids(values):
    return [] if values is None else [int(i) for i in values]


def _empty(tensor):
    return tensor.shape is not None and len(tensor.shape) and 0 in _ids(tensor.shape)


def _has_data(buffers, tensor):
    data = buffers[tensor.buffer].data if tensor.buffer < len(buffers) else None
    return data is not None and len(data) > 0


def _check_arity(where, name, inputs, outputs):
    bounds = _ARITY.get(name)
    if bounds is None:
        return
    low_in, high_in, low_out, high_out = bounds
    given = len(inputs)
    if given < low_in or (high_in is not None and given > high_in):
        want = low_in if high_in == low_in else f"{low_in}-{high_in or 'any'}"
        raise ValueError(f"{where} has {given} inputs; {name} takes {want}")
    given = len(outputs)
    if given < low_out or (high_out is not None and given > high_out):
        want = low_out if high_out == low_out else f"{low_out}-{high_out or 'any'}"
        raise ValueError(f"{where} has {given} outputs; {name} gives {want}")
    # Only optional trailing inputs (a bias) may be absent.
    required = inputs[:low_in]
    if any(i < 0 for i in required):
        raise ValueError(f"{where} lacks a required input (index -1)")


def _check_types(where, name, tensors, inputs, outputs):
    if name not in _SAME_TYPE or not outputs:
        return
    count = _SAME_TYPE[name]
    want = tensors[outputs[0]].type
    for i in inputs if count is None else inputs[:count]:
        if i >= 0 and tensors[i].type != want:
            raise ValueError(
                f"{where} reads tensor {i} of type {_type_name(tensors[i].type)} "
                f"into an output of type {_type_name(want)}; {name} takes one type")


def _type_name(code):
    for key, value in vars(_T).items():
        if value == code and not key.startswith("_"):
            return key
    return str(code)


def _check_subgraph_indices(where, op, count):
    options = op.builtinOptions
    for field in ("thenSubgraphIndex", "elseSubgraphIndex", "condSubgraphIndex",
                  "bodySubgraphIndex", "initSubgraphIndex", "subgraphIndex",
                  "decompositionSubgraphIndex"):
        index = getattr(options, field, None)
        if index is not None and not 0 <= int(index) < count:
            raise ValueError(f"{where} names subgraph {int(index)} of {count}")


def _check_tensor(g, i, tensor, buffers):
    where = f"tensor {i} of subgraph {g}"
    shape = _ids(tensor.shape)
    if len(shape) > _MAX_RANK or any(d < 0 for d in shape):
        raise ValueError(f"{where} has shape {shape}")
    elements = int(np.prod(shape, dtype=np.float64)) if shape else 1
    if elements > _MAX_ELEMENTS:
        raise ValueError(f"{where} has {elements} elements")
    _check_quantization(where, tensor, shape)
    data = buffers[tensor.buffer].data if tensor.buffer < len(buffers) else None
    if data is None or len(data) == 0:
        return
    if tensor.sparsity is not None:
        _check_sparsity(where, tensor, shape, len(data))
        return
    item = _ITEM_BYTES.get(tensor.type)
    if tensor.type in _PACKED_TYPES:
        bits = 4 if tensor.type == getattr(_T, "INT4", None) else 2
        want = -(-elements * bits // 8)
        if len(data) not in (want, elements):
            raise ValueError(f"{where} holds {len(data)} bytes for {elements} "
                             f"{bits}-bit values")
    elif item is not None and len(data) != elements * item:
        raise ValueError(
            f"{where} holds {len(data)} bytes; shape {shape} of "
            f"{item}-byte values needs {elements * item}")


def _check_quantization(where, tensor, shape):
    q = tensor.quantization
    if q is None:
        return
    scales = [] if q.scale is None else list(q.scale)
    zeros = [] if q.zeroPoint is None else list(q.zeroPoint)
    # One zero point shared by every channel is TFLite Micro's form
    # (`lean_tflite(..., micro=True)`); LiteRT refuses it with an error.
    if zeros and scales and len(zeros) not in (1, len(scales)):
        raise ValueError(f"{where} has {len(scales)} scales and {len(zeros)} "
                         "zero points")
    if len(scales) > 1:
        axis = int(q.quantizedDimension)
        if not 0 <= axis < len(shape) or shape[axis] != len(scales):
            raise ValueError(
                f"{where} has {len(scales)} scales along dimension {axis} "
                f"of shape {shape}")
    if any(not np.isfinite(s) for s in scales):
        raise ValueError(f"{where} has a scale that is not finite")


def _check_sparsity(where, tensor, shape, data_bytes):
    """Traversal order, block map and dimension metadata against the shape
    and the stored values."""
    s = tensor.sparsity
    order = _ids(s.traversalOrder)
    blocks = _ids(s.blockMap)
    metadata = s.dimMetadata or []
    rank = len(shape)
    if sorted(order) != list(range(rank + len(blocks))):
        raise ValueError(f"{where}: sparse traversal order {order} for rank {rank}")
    if any(not 0 <= b < rank for b in blocks) or len(set(blocks)) != len(blocks):
        raise ValueError(f"{where}: sparse block map {blocks} for rank {rank}")
    if len(metadata) != len(order):
        raise ValueError(f"{where}: {len(metadata)} sparse dimensions for "
                         f"traversal order {order}")
    # Sizes of the traversed dimensions: blocked dims first, then blocks.
    sizes = list(shape)
    for k, dim in enumerate(blocks):
        block = metadata[order.index(rank + k)]
        size = int(block.denseSize)
        if size <= 0 or shape[dim] % size:
            raise ValueError(f"{where}: block of {size} along dimension {dim} "
                             f"of shape {shape}")
        sizes[dim] = shape[dim] // size
        sizes.append(size)
    count = 1  # entries reached so far along the traversal
    for level, dim in enumerate(order):
        meta = metadata[level]
        if meta.format == schema.DimensionType.DENSE:
            if int(meta.denseSize) != sizes[dim]:
                raise ValueError(f"{where}: dense dimension {dim} of size "
                                 f"{int(meta.denseSize)}, expected {sizes[dim]}")
            count *= sizes[dim]
            continue
        segments = _index_vector(meta.arraySegments)
        indices = _index_vector(meta.arrayIndices)
        if segments is None or indices is None:
            raise ValueError(f"{where}: sparse dimension {dim} without its "
                             "segments and indices")
        if (len(segments) != count + 1 or segments[0] != 0
                or np.any(np.diff(segments) < 0) or segments[-1] != len(indices)):
            raise ValueError(f"{where}: bad segments of sparse dimension {dim}")
        if len(indices) and (indices.min() < 0 or indices.max() >= sizes[dim]):
            raise ValueError(f"{where}: an index of sparse dimension {dim} is "
                             f"outside 0..{sizes[dim] - 1}")
        count = len(indices)
    item = _ITEM_BYTES.get(tensor.type)
    if item is not None and data_bytes != count * item:
        raise ValueError(f"{where}: {data_bytes} bytes of sparse values; the "
                         f"metadata describes {count}")


def _index_vector(union):
    """The values of a sparse index vector (Int32/Uint16/Uint8Vector)."""
    if union is None:
        return None
    values = getattr(union, "values", None)
    return None if values is None else np.asarray(values, dtype=np.int64)
