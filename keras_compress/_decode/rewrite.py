"""Insert TFLite Micro `TFLM_DECODE` operators into a TFLite model.

For every compressed constant the tensor itself becomes the encoded data
(a UINT8 constant of shape `(len,)`, no quantization, no name) and a new
UINT8 constant holds the ancillary data. Immediately before each operator
that reads compressed constants, one DECODE operator takes the pairs
`(encoded, ancillary)` and writes one decoded tensor per pair: a copy of
the original tensor's name, shape, type and quantization without a buffer.
The consumer then reads the decoded tensors. Tensor indices never move
(tensors are only appended), so a DECODE input is the index of the
original tensor.
"""

import copy

import numpy as np

from keras_compress import _tflite
from keras_compress import _tflite_edit

DECODE_OP = "TFLM_DECODE"
_S = _tflite.schema


def decoded_copy(tensor):
    """The tensor a DECODE writes for `tensor`: same metadata, no buffer.

    A single quantization scale gets `quantized_dimension` 0: the DECODE
    kernels refuse any other axis unless there are several channels.
    """
    out = copy.deepcopy(tensor)
    out.buffer = 0
    q = out.quantization
    if q is not None and (q.scale is None or len(q.scale) <= 1):
        q.quantizedDimension = 0
    return out


def is_decode(model, op):
    """Whether `op` (an `OperatorT` of `model`) is a `TFLM_DECODE`."""
    code = (model.operatorCodes or [])[op.opcodeIndex]
    return _tflite.builtin_op_name(code) == f"CUSTOM:{DECODE_OP}"


def decode_opcode_index(model):
    """Index of the `TFLM_DECODE` operator code, appended if missing."""
    return _tflite_edit.custom_opcode_index(model, DECODE_OP)


def _uint8_constant(buffer, length):
    tensor = _S.TensorT()
    tensor.shape = [length]
    tensor.type = _S.TensorType.UINT8
    tensor.buffer = buffer
    return tensor


def insert_decodes(model, encodings):
    """Returns a copy of `model` with DECODE operators for `encodings`.

    Args:
        model: A `schema.ModelT` (not changed).
        encodings: `{(subgraph, tensor): (encoded, ancillary)}` bytes for
            constants that only operators read (no graph input or output)
            and that own their buffer.

    Returns:
        The new `schema.ModelT`.
    """
    model = copy.deepcopy(model)
    model.buffers = list(model.buffers or [])
    opcode = decode_opcode_index(model)
    for g, graph in enumerate(model.subgraphs):
        mine = {t: enc for (sg, t), enc in encodings.items() if sg == g}
        if not mine:
            continue
        graph.tensors = list(graph.tensors)
        ancillary = {}
        for t, (_, anc) in sorted(mine.items()):
            graph.tensors.append(_uint8_constant(_tflite_edit.new_buffer(model, anc), len(anc)))
            ancillary[t] = len(graph.tensors) - 1
        originals = {t: graph.tensors[t] for t in mine}
        operators = []
        for op in graph.operators or []:
            inputs = [int(i) for i in op.inputs]
            reads = list(dict.fromkeys(i for i in inputs if i in mine))
            if reads:
                decode = _S.OperatorT()
                decode.opcodeIndex = opcode
                decode.inputs, decode.outputs = [], []
                for t in reads:
                    graph.tensors.append(decoded_copy(originals[t]))
                    decoded = len(graph.tensors) - 1
                    decode.inputs += [t, ancillary[t]]
                    decode.outputs.append(decoded)
                    inputs = [decoded if i == t else i for i in inputs]
                op.inputs = inputs
                operators.append(decode)
            operators.append(op)
        graph.operators = operators
        for t, (enc, _) in mine.items():
            tensor = copy.deepcopy(originals[t])
            buffer = model.buffers[tensor.buffer] = _S.BufferT()
            buffer.data = np.frombuffer(enc, dtype=np.uint8)
            tensor.shape = [len(enc)]
            tensor.shapeSignature = None
            tensor.type = _S.TensorType.UINT8
            tensor.quantization = None
            tensor.name = None
            graph.tensors[t] = tensor
    return model
