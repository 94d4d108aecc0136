"""Keep a tensor in TFLite's sparse format only where that format is smaller.

The converter's `EXPERIMENTAL_SPARSITY` encodes every weight it finds sparse
enough, whatever its dtype. For int8 weights, the CSR index arrays (one byte
or two per stored value, plus a segment array) can outweigh the zeros they
save, so a sparse int8 file can come out bigger than the dense one. Here
each sparse constant is decoded back to its dense values; where the dense
bytes are not more than the sparse encoding (values, index arrays and the
flatbuffer tables and `DENSIFY` operator that come with it), the tensor is
stored dense and its `DENSIFY` operator removed.
"""

import numpy as np

from keras_compress import _tflite
from keras_compress.export import _lean

_T = _tflite.schema.TensorType
_DTYPES = {
    _T.FLOAT32: "<f4",
    _T.FLOAT16: "<f2",
    _T.INT8: "i1",
    _T.UINT8: "u1",
    _T.INT16: "<i2",
    _T.INT32: "<i4",
}
_INTEGER_TYPES = (_T.INT8, _T.UINT8, _T.INT16, _T.INT32)
_SPARSE_CSR = _tflite.schema.DimensionType.SPARSE_CSR
# Flatbuffer bytes a sparse tensor costs besides its values and index
# arrays: the sparsity tables (about 16 per level), and the DENSIFY
# operator with its output tensor (measured: about 230), plus the
# output's copy of the quantization parameters.
_TABLE_BYTES_PER_LEVEL = 16
_DENSIFY_BYTES = 230


def has_sparse_tensors(model):
    return any(
        t.sparsity is not None for g in model.subgraphs for t in g.tensors or []
    )


def has_integer_sparse_tensors(model):
    """True when a sparse constant holds integers (int8 weights).

    LiteRT 2.3's XNNPACK delegate fails to prepare the FULLY_CONNECTED ops
    that read such weights (directly or through DENSIFY), so these files
    run with LiteRT's builtin or reference kernels only.
    """
    return any(
        t.sparsity is not None and t.type in _INTEGER_TYPES
        for g in model.subgraphs
        for t in g.tensors or []
    )


def densify_where_smaller(data):
    """Returns `data` with each sparse constant stored dense where smaller.

    Returns the same bytes when every sparse tensor is smaller sparse.
    """
    model = _tflite.parse(data)
    changed = False
    for graph in model.subgraphs:
        for index, tensor in enumerate(graph.tensors or []):
            if tensor.sparsity is None or tensor.type not in _DTYPES:
                continue
            dense = decode(model, tensor)
            if dense is None:
                continue
            consumers = _densify_consumers(model, graph, index)
            outputs = [graph.tensors[int(graph.operators[k].outputs[0])] for k in consumers]
            if dense.nbytes > sparse_cost(model, tensor, outputs):
                continue
            _store_dense(model, graph, index, dense, consumers)
            changed = True
    if not changed:
        return data
    _lean.remove_unused(model)
    return _tflite.serialize(model)


def sparse_cost(model, tensor, densified):
    """Bytes of a sparse tensor's encoding (see the module doc).

    `densified` are the outputs of its DENSIFY operators, whose
    quantization parameters (a copy of the tensor's) go with the encoding.
    """
    cost = len(model.buffers[tensor.buffer].data)
    s = tensor.sparsity
    cost += 4 * len(_lean._ids(s.traversalOrder)) + 4 * len(_lean._ids(s.blockMap))
    for dim in s.dimMetadata or []:
        cost += _TABLE_BYTES_PER_LEVEL
        for vector in (dim.arraySegments, dim.arrayIndices):
            if vector is not None and vector.values is not None:
                cost += np.asarray(vector.values).nbytes + 4
    for output in densified:
        cost += _DENSIFY_BYTES
        q = output.quantization
        if q is not None:
            for values in (q.scale, q.zeroPoint, q.min, q.max):
                if values is not None:
                    cost += np.asarray(values).nbytes + 4
    return cost


def decode(model, tensor):
    """Dense values of a sparse constant, or None if its format is unknown.

    TFLite's format: the tensor is traversed in `traversal_order` over its
    dimensions followed by its block dimensions (`block_map[j]` is the
    dimension block dimension `j` splits); each level is DENSE (every index
    up to `dense_size`) or SPARSE_CSR (for the parent position `p`, the
    indices `array_indices[array_segments[p]:array_segments[p + 1]]`). The
    buffer holds the stored values in traversal order.
    """
    s = tensor.sparsity
    shape = _lean._ids(tensor.shape)
    order = _lean._ids(s.traversalOrder)
    block_map = _lean._ids(s.blockMap)
    dims = s.dimMetadata or []
    rank = len(shape)
    if len(order) != rank + len(block_map) or len(dims) != len(order):
        return None
    values = np.frombuffer(
        np.asarray(model.buffers[tensor.buffer].data, np.uint8).tobytes(),
        dtype=_DTYPES[tensor.type],
    )
    positions = np.zeros(1, dtype=np.int64)
    coords = []
    for dim in dims:
        if dim.format == _SPARSE_CSR:
            if dim.arraySegments is None or dim.arrayIndices is None:
                return None
            segments = np.asarray(dim.arraySegments.values, dtype=np.int64)
            indices = np.asarray(dim.arrayIndices.values, dtype=np.int64)
            if positions.size and positions.max() + 1 >= segments.size:
                return None
            starts, ends = segments[positions], segments[positions + 1]
            counts = ends - starts
            first = np.cumsum(counts) - counts
            k = np.arange(counts.sum()) - np.repeat(first - starts, counts)
            if k.size and k.max() >= indices.size:
                return None
            coords = [np.repeat(c, counts) for c in coords] + [indices[k]]
            positions = k
        else:
            size = int(dim.denseSize)
            coords = [np.repeat(c, size) for c in coords]
            coords.append(np.tile(np.arange(size), positions.size))
            positions = (positions[:, None] * size + np.arange(size)).reshape(-1)
    if positions.size != values.size:
        return None
    level = {d: k for k, d in enumerate(order)}
    full = []
    for d in range(rank):
        c = coords[level[d]]
        if d in block_map:
            j = block_map.index(d)
            block = int(dims[level[rank + j]].denseSize)
            c = c * block + coords[level[rank + j]]
        if c.size and c.max() >= shape[d]:
            return None
        full.append(c)
    dense = np.zeros(shape, dtype=values.dtype)
    dense[tuple(full)] = values
    return dense


def _densify_consumers(model, graph, index):
    codes = model.operatorCodes or []
    return [
        k for k, op in enumerate(graph.operators or [])
        if _tflite.builtin_op_name(codes[op.opcodeIndex]) == "DENSIFY"
        and _lean._ids(op.inputs)[:1] == [index]
    ]


def _store_dense(model, graph, index, dense, consumers):
    """Makes tensor `index` a dense constant and bypasses its DENSIFY ops."""
    tensor = graph.tensors[index]
    buffer = _tflite.schema.BufferT()
    buffer.data = np.frombuffer(dense.tobytes(), dtype=np.uint8).copy()
    model.buffers.append(buffer)
    tensor.buffer = len(model.buffers) - 1
    tensor.sparsity = None
    replaced = {}
    for k in consumers:
        replaced[int(graph.operators[k].outputs[0])] = index
    graph.operators = [
        op for k, op in enumerate(graph.operators) if k not in set(consumers)
    ]

    def rewire(ids):
        if ids is None:
            return None
        return np.asarray([replaced.get(i, i) for i in _lean._ids(ids)], dtype=np.int32)

    for op in graph.operators:
        op.inputs = rewire(op.inputs)
    graph.outputs = rewire(graph.outputs)
