"""The float32 operators that decide whether a sample leaves an exit.

Appended to a stage's subgraph by the stitcher (`_stitch`): the exit's
class probabilities (a SOFTMAX for logits), its confidence (REDUCE_MAX, or
the normalized entropy from MAXIMUM, LOG, MUL and SUM) and the comparison
with the threshold (a constant, or a slice of the threshold input), the
rule of `keras_compress._exit_rule` in float32.
"""

import numpy as np

from keras_compress import _tflite

_S = _tflite.schema
_OPS = _S.BuiltinOperator
_T = _S.TensorType

# Probabilities below this count as 0 in the entropy (p log p -> 0).
_TINY = 1e-30


def probabilities(builder, graph, scores, is_probability, j):
    """Float32 class probabilities of the exit's scores tensor."""
    tensor = graph.tensors[scores]
    shape = [int(s) for s in tensor.shape]
    if tensor.type != _T.FLOAT32:
        raise RuntimeError(f"Stage {j}'s exit is not float32 (type {tensor.type}).")
    if is_probability:
        return scores
    out = builder.tensor(graph, shape, _T.FLOAT32, f"exit_{j}_softmax")
    options = _S.SoftmaxOptionsT()
    options.beta = 1.0
    builder.op(graph, _OPS.SOFTMAX, [scores], [out], _S.BuiltinOptions.SoftmaxOptions,
               options)
    return out


def confident(builder, graph, p, criterion, threshold, j, threshold_tensor):
    """A bool `(1,)` tensor: exit j's confidence passes its threshold."""
    axis = builder.constant(graph, np.asarray([1], np.int32), _T.INT32, f"exit_{j}_axis")
    reducer = _S.ReducerOptionsT()
    reducer.keepDims = False
    conf = builder.tensor(graph, [1], _T.FLOAT32, f"exit_{j}_confidence")
    if criterion == "max_prob":
        builder.op(graph, _OPS.REDUCE_MAX, [p, axis], [conf],
                   _S.BuiltinOptions.ReducerOptions, reducer)
        compare = _OPS.GREATER_EQUAL
    else:
        shape = [int(s) for s in graph.tensors[p].shape]
        classes = shape[-1]
        tiny = builder.constant(graph, np.asarray([_TINY], np.float32), _T.FLOAT32,
                                f"exit_{j}_tiny")
        floor = builder.tensor(graph, shape, _T.FLOAT32, f"exit_{j}_p_floor")
        builder.op(graph, _OPS.MAXIMUM, [p, tiny], [floor])
        logs = builder.tensor(graph, shape, _T.FLOAT32, f"exit_{j}_log_p")
        builder.op(graph, _OPS.LOG, [floor], [logs])
        terms = builder.tensor(graph, shape, _T.FLOAT32, f"exit_{j}_p_log_p")
        mul = _S.MulOptionsT()
        builder.op(graph, _OPS.MUL, [p, logs], [terms], _S.BuiltinOptions.MulOptions, mul)
        total = builder.tensor(graph, [1], _T.FLOAT32, f"exit_{j}_sum_p_log_p")
        builder.op(graph, _OPS.SUM, [terms, axis], [total],
                   _S.BuiltinOptions.ReducerOptions, reducer)
        scale = builder.constant(graph, np.asarray([-1.0 / np.log(classes)], np.float32),
                                 _T.FLOAT32, f"exit_{j}_entropy_scale")
        builder.op(graph, _OPS.MUL, [total, scale], [conf], _S.BuiltinOptions.MulOptions,
                   _S.MulOptionsT())
        compare = _OPS.LESS_EQUAL
    if threshold_tensor is None:
        limit = builder.constant(graph, np.asarray([threshold], np.float32), _T.FLOAT32,
                                 f"exit_{j}_threshold")
    else:
        limit = builder.tensor(graph, [1], _T.FLOAT32, f"exit_{j}_threshold")
        # threshold[0, j:j+1]: shape (1,) once axis 0 is shrunk.
        begin = builder.constant(graph, np.asarray([0, j], np.int32), _T.INT32,
                                 f"exit_{j}_begin")
        end = builder.constant(graph, np.asarray([1, j + 1], np.int32), _T.INT32,
                               f"exit_{j}_end")
        stride = builder.constant(graph, np.asarray([1, 1], np.int32), _T.INT32,
                                  f"exit_{j}_stride")
        options = _S.StridedSliceOptionsT()
        options.shrinkAxisMask = 1
        builder.op(graph, _OPS.STRIDED_SLICE, [threshold_tensor, begin, end, stride],
                   [limit], _S.BuiltinOptions.StridedSliceOptions, options)
    cond = builder.tensor(graph, [1], _T.BOOL, f"exit_{j}_confident")
    builder.op(graph, compare, [conf, limit], [cond])
    return cond
