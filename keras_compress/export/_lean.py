"""The lean pass: drop what the LiteRT and TFLite Micro runtimes never read.

Each step below was checked by running the three demo models (the digits
CNN, a Conv1D net on MNIST-1D and a 64-300-100-10 MLP, float32 and int8) in
LiteRT (XNNPACK, builtin and reference kernels) and in TFLite Micro: the
lean files give bit-identical outputs. Why each step is safe:

- Tensor names, the model description and subgraph names: the runtimes use
  them for nothing but `get_*_details()["name"]` (LiteRT's InterpreterBuilder
  falls back to an empty name; TFLM never reads them).
- The signature def: LiteRT's interpreter runs without one (`invoke()` on
  the subgraph's inputs and outputs); TFLM does not read it. Before it is
  dropped, the subgraph's input and output lists are put in the signature's
  order (the model's order: the converter names a single signature's
  tensors `input_<k>`/`output_<k>`), which LiteRT and TFLM then follow.
  Several signatures, or names without that numbering, keep the signatures.
- `min_runtime_version` and `CONVERSION_METADATA` metadata: LiteRT's
  InterpreterBuilder reads `CONVERSION_METADATA` only for telemetry and
  never reads `min_runtime_version`; TFLM reads neither. Other metadata
  (`COMPRESSION_METADATA`, offline memory plans, ...) is kept.
- One buffer per activation tensor: an empty buffer says "not a constant",
  and buffer 0 (always empty) says the same, so every non-constant,
  non-variable tensor points at buffer 0.
- Byte-identical constants: tensors of the same type, shape and
  quantization whose data is byte-identical share one buffer (the runtimes
  map constants read-only).
- `shape_signature` equal to `shape`, and quantization tables with no scale
  (float tensors): the runtimes read a missing field as that value.
- Unused buffers, tensors and operator codes are removed and indices
  renumbered, unless the file holds metadata besides the two above (it may
  refer to tensors or buffers by index): then the dropped metadata's
  buffers are only emptied.

Not removed, because a runtime needs it: per-channel zero points (LiteRT's
InterpreterBuilder refuses a tensor with fewer zero points than scales:
"QuantizationParam has 1 zero_point values and 10 scale values") and the
quantization of int32 biases (without it XNNPACK no longer takes the int8
CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED ops: 12 of the digits CNN's
13 ops -> 6, and the outputs change). TFLite Micro alone accepts one zero
point for all channels (its allocator expands it), which `micro=True` does.
"""

import numpy as np

from keras_compress import _tflite

INFORMATIONAL_METADATA = (b"min_runtime_version", b"CONVERSION_METADATA")


def lean_bytes(data, micro=False):
    """Returns the lean version of `.tflite` bytes (see the module doc).

    Args:
        data: Validated `.tflite` bytes.
        micro: Also store one zero point for per-channel quantized tensors
            whose zero points are all equal (TFLite Micro only: LiteRT then
            refuses the file). Default False.
    """
    model = _tflite.parse(data)
    _check_self_contained(model)
    # Other metadata (TFLM's COMPRESSION_METADATA, offline memory plans)
    # may hold tensor or buffer indices: then nothing is renumbered.
    stable = any(m.name not in INFORMATIONAL_METADATA for m in model.metadata or [])
    order_io_and_drop_signature(model)
    drop_names(model)
    dropped = drop_informational_metadata(model)
    for graph in model.subgraphs:
        for tensor in graph.tensors or []:
            _simplify_tensor(tensor)
    point_activations_at_buffer_zero(model)
    if micro:
        share_zero_points(model)
    if stable:
        for index in dropped:
            model.buffers[index].data = None
    else:
        remove_unused(model)
    return _tflite.serialize(model)


def signature_ordered(data):
    """`data` with only its subgraph inputs/outputs put in signature order
    (and the signature dropped when that was possible)."""
    model = _tflite.parse(data)
    if not model.signatureDefs or not order_io_and_drop_signature(model):
        return data
    return _tflite.serialize(model)


def _check_self_contained(model):
    for b in model.buffers or []:
        if b.offset > 1:
            raise ValueError(
                "Expected a .tflite whose constants are inside the flatbuffer. "
                "Received: a model with buffers stored after it (offset/size, "
                "as for files over 2 GB), which the lean pass does not rewrite"
            )
    for graph in model.subgraphs:
        for op in graph.operators or []:
            if op.largeCustomOptionsOffset > 1:
                raise ValueError(
                    "Expected a .tflite whose custom options are inside the "
                    "flatbuffer. Received: a model with large custom options "
                    "stored after it"
                )


def order_io_and_drop_signature(model):
    """Puts subgraph 0's inputs/outputs in signature order, then drops it.

    Returns True when the signature was dropped.
    """
    signatures = model.signatureDefs or []
    if len(signatures) != 1 or signatures[0].subgraphIndex != 0:
        return not signatures
    signature = signatures[0]
    graph = model.subgraphs[0]
    inputs = _numbered(signature.inputs, graph.inputs)
    outputs = _numbered(signature.outputs, graph.outputs)
    if inputs is None or outputs is None:
        return False
    graph.inputs = np.asarray(inputs, dtype=np.int32)
    graph.outputs = np.asarray(outputs, dtype=np.int32)
    model.signatureDefs = None
    return True


def _numbered(tensor_maps, ids):
    """Tensor indices sorted by the `_<k>` suffix of their signature names.

    Returns None unless the maps name exactly the subgraph's tensors `ids`
    and (for more than one) each name ends in a distinct number.
    """
    tensor_maps = tensor_maps or []
    ids = [int(i) for i in ([] if ids is None else ids)]
    if sorted(int(m.tensorIndex) for m in tensor_maps) != sorted(ids):
        return None
    if len(tensor_maps) <= 1:
        return ids
    keyed = []
    for m in tensor_maps:
        name = m.name.decode() if isinstance(m.name, bytes) else str(m.name)
        digits = name.rsplit("_", 1)[-1]
        if not digits.isdigit():
            return None
        keyed.append((int(digits), int(m.tensorIndex)))
    if len({k for k, _ in keyed}) != len(keyed):
        return None
    return [index for _, index in sorted(keyed)]


def drop_names(model):
    model.description = None
    for graph in model.subgraphs:
        graph.name = None
        for tensor in graph.tensors or []:
            tensor.name = None


def drop_informational_metadata(model):
    """Drops those metadata entries; returns the buffer indices they used."""
    entries = model.metadata or []
    model.metadata = [m for m in entries if m.name not in INFORMATIONAL_METADATA] or None
    return [m.buffer for m in entries if m.name in INFORMATIONAL_METADATA]


def _simplify_tensor(tensor):
    shape, signature = tensor.shape, tensor.shapeSignature
    if signature is not None and shape is not None and list(signature) == list(shape):
        tensor.shapeSignature = None
    q = tensor.quantization
    if q is not None and _empty(q.scale) and _empty(q.zeroPoint) and _empty(q.min) \
            and _empty(q.max) and q.details is None:
        tensor.quantization = None


def _empty(values):
    return values is None or len(values) == 0


def is_constant(model, tensor):
    buffer = model.buffers[tensor.buffer]
    return buffer.data is not None and len(buffer.data) > 0


def point_activations_at_buffer_zero(model):
    for graph in model.subgraphs:
        for tensor in graph.tensors or []:
            if not tensor.isVariable and not is_constant(model, tensor):
                tensor.buffer = 0


def share_zero_points(model):
    """One zero point for per-channel tensors whose zero points are equal."""
    for graph in model.subgraphs:
        for tensor in graph.tensors or []:
            q = tensor.quantization
            if q is None or q.zeroPoint is None or len(q.zeroPoint) < 2:
                continue
            zero_points = np.asarray(q.zeroPoint, dtype=np.int64)
            if np.all(zero_points == zero_points[0]):
                q.zeroPoint = zero_points[:1].copy()


def remove_unused(model):
    """Drops unused tensors, shares identical constants, drops unused
    buffers and operator codes, and renumbers every index."""
    for g, graph in enumerate(model.subgraphs):
        signatures = [s for s in model.signatureDefs or [] if s.subgraphIndex == g]
        _remove_unused_tensors(graph, signatures)
    _share_identical_buffers(model)
    _remove_unused_buffers(model)
    _remove_unused_operator_codes(model)


def _ids(values):
    return [] if values is None else [int(v) for v in values]


def _remove_unused_tensors(graph, signatures):
    tensors = graph.tensors or []
    tensor_maps = [m for s in signatures for m in (s.inputs or []) + (s.outputs or [])]
    used = set(_ids(graph.inputs)) | set(_ids(graph.outputs))
    used.update(int(m.tensorIndex) for m in tensor_maps)
    for op in graph.operators or []:
        for ids in (op.inputs, op.outputs, op.intermediates):
            used.update(i for i in _ids(ids) if i >= 0)
    if len(used) == len(tensors):
        return
    kept, new_index = _keep(tensors, used)
    graph.tensors = kept

    def remap(ids):
        if ids is None:
            return None
        return np.asarray([new_index[i] if i >= 0 else i for i in _ids(ids)],
                          dtype=np.int32)

    graph.inputs = remap(graph.inputs)
    graph.outputs = remap(graph.outputs)
    for op in graph.operators or []:
        op.inputs = remap(op.inputs)
        op.outputs = remap(op.outputs)
        op.intermediates = remap(op.intermediates)
    for m in tensor_maps:
        m.tensorIndex = new_index[int(m.tensorIndex)]


def _quantization_key(q):
    if q is None:
        return None
    parts = [q.quantizedDimension, q.detailsType]
    for values in (q.scale, q.zeroPoint, q.min, q.max):
        parts.append(None if values is None else np.asarray(values).tobytes())
    return tuple(parts)


def _share_identical_buffers(model):
    users = {}
    for graph in model.subgraphs:
        for tensor in graph.tensors or []:
            users.setdefault(tensor.buffer, []).append(tensor)
    first = {}
    target = {}
    for index, tensors in users.items():
        if index == 0 or not is_constant(model, tensors[0]):
            continue
        keys = {
            (t.type, tuple(_ids(t.shape)), _quantization_key(t.quantization))
            for t in tensors
        }
        if len(keys) != 1 or any(t.isVariable or t.sparsity is not None for t in tensors):
            continue
        data = np.asarray(model.buffers[index].data, dtype=np.uint8).tobytes()
        key = (keys.pop(), data)
        target[index] = first.setdefault(key, index)
    for tensors in users.values():
        for t in tensors:
            t.buffer = target.get(t.buffer, t.buffer)


def _remove_unused_buffers(model):
    buffers = model.buffers or []
    used = {0}
    for graph in model.subgraphs:
        used.update(t.buffer for t in graph.tensors or [])
    used.update(m.buffer for m in model.metadata or [])
    used.update(_ids(model.metadataBuffer))
    kept, new_index = _keep(buffers, used)
    model.buffers = kept
    for graph in model.subgraphs:
        for t in graph.tensors or []:
            t.buffer = new_index[t.buffer]
    for m in model.metadata or []:
        m.buffer = new_index[m.buffer]
    if model.metadataBuffer is not None:
        model.metadataBuffer = np.asarray(
            [new_index[i] for i in _ids(model.metadataBuffer)], dtype=np.int32
        )


def _remove_unused_operator_codes(model):
    codes = model.operatorCodes or []
    used = sorted({op.opcodeIndex for g in model.subgraphs for op in g.operators or []})
    if len(used) == len(codes):
        return
    new_index = {old: new for new, old in enumerate(used)}
    model.operatorCodes = [codes[i] for i in used]
    for graph in model.subgraphs:
        for op in graph.operators or []:
            op.opcodeIndex = new_index[op.opcodeIndex]


def _keep(items, used):
    """The items whose index is in `used`, and `{old index: new index}`."""
    kept, new_index = [], {}
    for i, item in enumerate(items):
        if i in used:
            new_index[i] = len(kept)
            kept.append(item)
    return kept, new_index
