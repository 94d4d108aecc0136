"""The sign of a binarized input, as TFLite's int8 graph computes it.

`SteSign` on an activation converts to `SELECT_V2(GREATER_EQUAL(a, 0),
+1, -1)` (the two values as int8 constants, often through BROADCAST_TO).
`find` recognizes that chain in front of an operator, so that the packed
operator reads `a` and binarizes it itself: bit = (a >= threshold), where
`threshold` is the first int8 value for which TFLite's int8 GREATER_EQUAL
(its reference arithmetic: both sides shifted left by 8 and rescaled to a
common scale) is true.
"""

import dataclasses

import numpy as np

from keras_compress.custom_ops import reference
from keras_compress.export._packed import graph as g

LEFT_SHIFT = 8


@dataclasses.dataclass
class Binarization:
    source: int       # the tensor the sign is taken of
    threshold: int    # bit = source >= threshold (int8 units)
    value_true: int   # the int8 values SELECT_V2 writes
    value_false: int


def find(model, graph, links, tensor):
    """The binarization producing `tensor`, or None."""
    select = links.producer_of(graph, tensor)
    if select is None or g.op_name(model, select) != "SELECT_V2":
        return None
    cond, on_true, on_false = (g.ids(select.inputs) + [-1, -1, -1])[:3]
    compare = links.producer_of(graph, cond)
    if compare is None or g.op_name(model, compare) != "GREATER_EQUAL":
        return None
    source, other = g.ids(compare.inputs)
    out = graph.tensors[tensor]
    values = [_single_value(model, graph, links, t, out) for t in (on_true, on_false)]
    limit = g.constant(model, graph, other)
    if None in values or limit is None or limit.size != 1:
        return None
    if graph.tensors[source].type != g.S.TensorType.INT8:
        return None
    threshold = _threshold(graph.tensors[source], graph.tensors[other], int(limit.ravel()[0]))
    if threshold is None:
        return None
    return Binarization(source, threshold, *values)


def _single_value(model, graph, links, index, like):
    """The one int8 value of a constant (maybe broadcast), quantized like `like`."""
    tensor = graph.tensors[index]
    if g.quantization(tensor)[0].tolist() != g.quantization(like)[0].tolist() or (
            g.quantization(tensor)[1].tolist() != g.quantization(like)[1].tolist()):
        return None
    value = g.constant(model, graph, index)
    if value is None:
        producer = links.producer_of(graph, index)
        if producer is None or g.op_name(model, producer) != "BROADCAST_TO":
            return None
        value = g.constant(model, graph, g.ids(producer.inputs)[0])
    if value is None or value.dtype != np.int8 or np.unique(value).size != 1:
        return None
    return int(value.ravel()[0])


def _scaled(values, tensor):
    """TFLite's rescaled comparison operand for int8 `values` of `tensor`."""
    scales, zero_points = g.quantization(tensor)
    if scales.size != 1:
        return None
    multiplier, shift = reference.quantize_multiplier(float(scales[0]))
    if shift > 0:
        return None  # TFLite requires scales below 1 here
    shifted = (np.asarray(values, dtype=np.int64) - int(zero_points[0])) << LEFT_SHIFT
    return reference.multiply_by_quantized_multiplier(shifted, multiplier, shift)


def _threshold(source, other, limit_value):
    """The first int8 value v with GREATER_EQUAL(v, limit) true; None unless
    the comparison is false below it and true from it."""
    values = np.arange(-128, 128)
    left = _scaled(values, source)
    right = _scaled([limit_value], other)
    if left is None or right is None:
        return None
    true = left >= right[0]
    first = int(np.argmax(true)) if true.any() else 256
    if not np.array_equal(true, np.arange(256) >= first):
        return None
    return first - 128
