"""What the interpreters trust, checked before they see a file.

Each test breaks one thing a mutant broke (or could) in a valid model,
through the flatbuffer's object API, and expects a `ValueError` naming it
from `_tflite.parse` and from the runtimes, never a crash.
"""

import keras
import numpy as np
import pytest

from keras_compress import _tflite
from keras_compress import export
from keras_compress.runtime import LiteRTModel
from keras_compress.runtime import MicroModel

S = _tflite.schema

def _edit(data, change):
    model = _tflite.parse(data)
    change(model)
    return _tflite.serialize(model)

def _op(model, name):
    graph = model.subgraphs[0]
    for k, op in enumerate(graph.operators):
        if _tflite.builtin_op_name(model.operatorCodes[op.opcodeIndex]) == name:
            return graph, k, op
    raise AssertionError(name)

def _refused(data, match):
    with pytest.raises(ValueError, match=match):
        _tflite.parse(data)
    for runtime in (LiteRTModel, MicroModel):
        with pytest.raises(ValueError, match=match):
            runtime(data)

def test_operator_arity(cnn_int8):
    def drop_inputs(model):
        _, _, op = _op(model, "CONV_2D")
        op.inputs = np.asarray([], np.int32)

    _refused(_edit(cnn_int8, drop_inputs), r"CONV_2D\) of subgraph 0 has 0 inputs; "
                                            r"CONV_2D takes 2-3")

    def extra_output(model):
        _, _, op = _op(model, "SOFTMAX")
        op.outputs = np.asarray(list(op.outputs) * 2, np.int32)

    _refused(_edit(cnn_int8, extra_output), "has 2 outputs; SOFTMAX gives 1")

def test_reading_a_tensor_nothing_writes(cnn_int8):
    def reorder(model):  # the softmax first: it reads what runs later
        graph = model.subgraphs[0]
        graph.operators = graph.operators[-1:] + graph.operators[:-1]

    _refused(_edit(cnn_int8, reorder), "which no earlier operator writes")

    def write_constant(model):
        graph, _, op = _op(model, "CONV_2D")
        op.outputs = np.asarray([op.inputs[1]], np.int32)  # into its own weights

    _refused(_edit(cnn_int8, write_constant), "writes into constant tensor")

def test_constant_bytes_against_shape(cnn_int8):
    def shrink(model):
        graph, _, op = _op(model, "CONV_2D")
        buffer = model.buffers[graph.tensors[op.inputs[1]].buffer]
        buffer.data = buffer.data[:-3]

    _refused(_edit(cnn_int8, shrink), r"holds \d+ bytes; shape .* needs \d+")

    def grow_shape(model):
        graph, _, op = _op(model, "CONV_2D")
        tensor = graph.tensors[op.inputs[1]]
        tensor.shape = np.asarray(list(tensor.shape[:-1]) + [tensor.shape[-1] * 4], np.int32)

    _refused(_edit(cnn_int8, grow_shape), "holds .* bytes; shape")

    def negative(model):
        model.subgraphs[0].tensors[0].shape = np.asarray([1, -8, 8, 1], np.int32)

    _refused(_edit(cnn_int8, negative), r"has shape \[1, -8, 8, 1\]")

def test_quantization_parameters(cnn_int8):
    def wrong_axis(model):
        graph, _, op = _op(model, "CONV_2D")
        graph.tensors[op.inputs[1]].quantization.quantizedDimension = 3

    _refused(_edit(cnn_int8, wrong_axis), r"scales along dimension 3 of shape")

    def extra_zero_points(model):
        graph, _, op = _op(model, "CONV_2D")
        q = graph.tensors[op.inputs[1]].quantization
        q.zeroPoint = np.asarray(list(q.zeroPoint) + [0, 0], np.int64)

    _refused(_edit(cnn_int8, extra_zero_points), "scales and .* zero points")

def test_control_flow_subgraph_index(digits):
    from keras_compress.early_exit import add_early_exits, export_early_exit_file

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(4, 3, padding="same", name="b0")(inputs)
    backbone = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(h)))
    data = export_early_exit_file(add_early_exits(backbone, ["b0"]), verify=False)

    def far(model):
        _, _, op = _op(model, "IF")
        op.builtinOptions.elseSubgraphIndex = 7

    _refused(_edit(data, far), r"names subgraph 7 of 3")

@pytest.fixture(scope="module")
def sparse_int8(digits):
    (x_train, _), _ = digits
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(64), keras.layers.Dense(10)])
    kernel = model.layers[0].kernel.numpy()
    kernel[np.abs(kernel) < np.quantile(np.abs(kernel), 0.9)] = 0
    model.layers[0].kernel.assign(kernel)
    return export.to_tflite(model, quantize="int8", sparse=True, verify=False,
                            representative_data=x_train[:64].reshape(-1, 64))

def _sparse_tensor(model):
    for tensor in model.subgraphs[0].tensors:
        if tensor.sparsity is not None:
            return tensor
    raise AssertionError("no sparse tensor")

def test_sparsity_metadata(sparse_int8):
    _tflite.parse(sparse_int8)  # the converter's file passes

    def order(model):
        s = _sparse_tensor(model).sparsity
        s.traversalOrder = np.asarray([0, 0] + list(s.traversalOrder[2:]), np.int32)

    _refused(_edit(sparse_int8, order), "sparse traversal order")

    def index(model):
        for meta in _sparse_tensor(model).sparsity.dimMetadata:
            if meta.arrayIndices is not None:
                values = np.asarray(meta.arrayIndices.values).copy()
                values[0] = np.iinfo(values.dtype).max  # past the dimension
                meta.arrayIndices.values = values
                return

    _refused(_edit(sparse_int8, index), "an index of sparse dimension")

    def segments(model):
        for meta in _sparse_tensor(model).sparsity.dimMetadata:
            if meta.arraySegments is not None:
                values = np.asarray(meta.arraySegments.values).copy()
                values[-1] += 5
                meta.arraySegments.values = values
                return

    _refused(_edit(sparse_int8, segments), "bad segments of sparse dimension")

def test_isolate_turns_a_crash_into_an_error(digits):
    """TFLM's Python interpreter crashes (SIGSEGV) on an arena too small for
    a 64-300-100-10 MLP; with isolate=True the child dies, not this process."""
    (x_train, _), _ = digits
    keras.utils.set_random_seed(0)
    mlp = keras.Sequential([keras.Input((64,)), keras.layers.Dense(300, activation="relu"),
                            keras.layers.Dense(100, activation="relu"), keras.layers.Dense(10)])
    data = export.to_tflite(mlp, quantize="int8", int8_io=True, batch_size=1,
                            representative_data=x_train[:64].reshape(-1, 64))
    with pytest.raises(ValueError, match=r"crashed \(signal \d+\).*arena of 3300 bytes"):
        MicroModel(data, arena_size=3300, isolate=True)
    model = MicroModel(data, isolate=True)  # measured arena: loads and runs
    assert model.predict(x_train[:2].reshape(-1, 64)).shape == (2, 10)
    assert LiteRTModel(data, isolate=True).predict(x_train[:2].reshape(-1, 64)).shape == (2, 10)
    with pytest.raises(TypeError, match="isolate"):
        LiteRTModel(data, isolate="yes")
