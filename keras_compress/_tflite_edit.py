"""Adding operator codes, buffers, constant tensors and the signature def
to a `schema.ModelT`."""

import numpy as np

from keras_compress import _tflite

_S = _tflite.schema


def custom_opcode_index(model, name):
    """Index of the custom operator code `name`, appended if missing."""
    codes = model.operatorCodes = list(model.operatorCodes or [])
    for k, code in enumerate(codes):
        if _tflite.builtin_op_name(code) == f"CUSTOM:{name}":
            return k
    code = _S.OperatorCodeT()
    code.builtinCode = _S.BuiltinOperator.CUSTOM
    code.deprecatedBuiltinCode = min(_S.BuiltinOperator.CUSTOM, 127)
    code.customCode = name
    code.version = 1
    codes.append(code)
    return len(codes) - 1


def new_buffer(model, payload):
    """Appends a buffer holding `payload` (bytes); returns its index."""
    model.buffers = list(model.buffers or [])
    buffer = _S.BufferT()
    buffer.data = np.frombuffer(bytes(payload), dtype=np.uint8)
    model.buffers.append(buffer)
    return len(model.buffers) - 1


def add_constant(model, graph, values, tensor_type, name=None):
    """Appends a constant tensor of `values` (little-endian) to `graph`;
    returns its index."""
    values = np.asarray(values)
    tensor = _S.TensorT()
    tensor.shape = np.asarray(values.shape, dtype=np.int32)
    tensor.type = tensor_type
    tensor.buffer = new_buffer(model, values.astype(values.dtype.newbyteorder("<")).tobytes())
    tensor.name = name
    graph.tensors = list(graph.tensors or [])
    graph.tensors.append(tensor)
    return len(graph.tensors) - 1


def set_signature(model, input_names, output_names, key="serving_default"):
    """Gives `model` one signature def naming subgraph 0's inputs and
    outputs, in their order, `input_names` and `output_names`."""

    def tensor_maps(names, ids):
        maps = []
        for name, index in zip(names, ids):
            m = _S.TensorMapT()
            m.name = name
            m.tensorIndex = int(index)
            maps.append(m)
        return maps

    graph = model.subgraphs[0]
    signature = _S.SignatureDefT()
    signature.signatureKey = key
    signature.subgraphIndex = 0
    signature.inputs = tensor_maps(input_names, graph.inputs)
    signature.outputs = tensor_maps(output_names, graph.outputs)
    model.signatureDefs = [signature]
