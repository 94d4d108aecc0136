"""Reading a TFLite subgraph: constants, producers, consumers, op names."""

import numpy as np

from keras_compress import _tflite

S = _tflite.schema
NUMPY_TYPES = {
    S.TensorType.INT8: np.int8,
    S.TensorType.UINT8: np.uint8,
    S.TensorType.INT32: np.int32,
    S.TensorType.INT64: np.int64,
    S.TensorType.FLOAT32: np.float32,
}


def op_name(model, op):
    return _tflite.builtin_op_name(model.operatorCodes[op.opcodeIndex])


def ids(values):
    return [] if values is None else [int(v) for v in values]


def constant(model, graph, index):
    """The value of constant tensor `index` as an array of its shape, or None."""
    if index < 0:
        return None
    tensor = graph.tensors[index]
    data = model.buffers[tensor.buffer].data if tensor.buffer else None
    if data is None or len(data) == 0 or tensor.type not in NUMPY_TYPES:
        return None
    values = np.frombuffer(np.asarray(data, dtype=np.uint8).tobytes(),
                           dtype=NUMPY_TYPES[tensor.type])
    return values.reshape(ids(tensor.shape)) if tensor.shape is not None else values


def quantization(tensor):
    """`(scales, zero_points)` as float64 / int64 arrays (empty if none)."""
    q = tensor.quantization
    if q is None or q.scale is None:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    scales = np.asarray(q.scale, dtype=np.float32).astype(np.float64)
    zero_points = np.asarray(
        q.zeroPoint if q.zeroPoint is not None else [0], dtype=np.int64)
    return scales, zero_points


class Links:
    """Producer and consumers of every tensor of a subgraph."""

    def __init__(self, graph):
        self.producer = {}
        self.consumers = {}
        for k, op in enumerate(graph.operators or []):
            for t in ids(op.outputs):
                self.producer[t] = k
            for t in ids(op.inputs):
                if t >= 0:
                    self.consumers.setdefault(t, []).append(k)

    def producer_of(self, graph, tensor):
        k = self.producer.get(tensor)
        return None if k is None else graph.operators[k]


def remove_dead_operators(model, graph):
    """Drops operators none of whose outputs is read (nor a graph output)."""
    outputs = set(ids(graph.outputs))
    while True:
        read = outputs | {t for op in graph.operators for t in ids(op.inputs)}
        live = [op for op in graph.operators if any(t in read for t in ids(op.outputs))]
        if len(live) == len(graph.operators):
            return
        graph.operators = live
