"""What the interpreters trust, checked before they see a file.

Each test breaks one thing a mutant broke (or could) in a valid model,
through the flatbuffer's object API, and expects a `ValueError` naming it
from `_tflite.parse` and from the runtimes, never a crash.
"""

import json
import os

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

def test_operand_types(cnn_int8):
    """A fuzz mutant turned a RESHAPE (int8 data, int32 shape) into an ADD:
    TFLite Micro aborted the process."""
    def mixed_add(model):
        graph, _, op = _op(model, "ADD")
        bias = _op(model, "CONV_2D")[2].inputs[2]  # an int32 constant
        op.inputs = np.asarray([op.inputs[0], bias], np.int32)

    _refused(_edit(cnn_int8, mixed_add), r"ADD\) of subgraph 0 reads tensor \d+ of type "
                                         r"INT32 into an output of type INT8; ADD takes one type")

def test_outputs_without_a_batch_dimension(cnn_int8):
    """A fuzz mutant gave the output shape []: an IndexError when joining
    the batches of a prediction."""
    def scalar_output(model):
        graph = model.subgraphs[0]
        graph.tensors[graph.outputs[0]].shape = np.asarray([], np.int32)

    data = _edit(cnn_int8, scalar_output)
    with pytest.raises(ValueError, match=r"output 0 .* has shape \(\)\. Expected every "
                                         r"input and output to have a batch dimension"):
        MicroModel(data)
    # LiteRT gives the output its shape again when it prepares the model.
    assert LiteRTModel(data).predict(np.zeros((1, 8, 8, 1), np.int8)).shape == (1, 10)

def test_weight_rank(cnn_int8):
    """A fuzz mutant gave FULLY_CONNECTED weights of shape []."""
    for name, rank in (("FULLY_CONNECTED", 2), ("CONV_2D", 4)):
        def scalar_weights(model):
            graph, _, op = _op(model, name)
            graph.tensors[op.inputs[1]].shape = np.asarray([], np.int32)

        _refused(_edit(cnn_int8, scalar_weights),
                 rf"{name}\) of subgraph 0 has weights \(tensor \d+\) of shape \[\]; "
                 rf"{name} takes rank {rank}")

def test_control_flow_subgraph_index(digits, tmp_path):
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

    # The early-exit description in the metadata is checked before use
    # (a fuzz mutant dropped its criterion: a KeyError then).
    from keras_compress import _exit_file
    from keras_compress.runtime import EarlyExitRunner

    def metadata(change):
        def edit(model):
            for entry in model.metadata:
                if entry.name.decode() == _exit_file.METADATA_NAME:
                    buffer = model.buffers[entry.buffer]
                    info = json.loads(bytes(bytearray(buffer.data)).decode())
                    change(info)
                    buffer.data = np.frombuffer(json.dumps(info).encode(), np.uint8)
        return _edit(data, edit)

    for change, match in (
            (lambda info: info.pop("criterion"), r"criterion=None, expected one of"),
            (lambda info: info.update(num_exits="2"), r"num_exits='2', expected an integer"),
            (lambda info: info.update(threshold=[0.5, 0.5]), r"threshold=\[0.5, 0.5\], "
                                                              r"expected 1 numbers")):
        path = os.path.join(tmp_path, "exits.tflite")
        with open(path, "wb") as f:
            f.write(metadata(change))
        with pytest.raises(ValueError, match=r"early-exit metadata .* malformed: " + match):
            EarlyExitRunner(path)

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

def test_xnnpack_refusal_at_first_invoke_is_a_clear_error(sparse_int8, digits):
    """XNNPACK cannot prepare a sparse int8 FULLY_CONNECTED, at loading or
    (as the fuzz found, a bare RuntimeError then) at the first invoke: a
    `ValueError` naming the alternative, and the alternative runs."""
    (x_train, _), _ = digits
    x = x_train[:2].reshape(-1, 64)
    with pytest.raises(ValueError, match=r"LiteRT could not load the model: .*"
                                         r"XNNPACK refused an op; kernels='builtin'"):
        LiteRTModel(sparse_int8)
    assert LiteRTModel(sparse_int8, kernels="builtin").predict(x).shape == (2, 10)
    # With a dynamic batch (Flatten), XNNPACK prepares at the first invoke.
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(32), keras.layers.Dense(10)])
    kernel = model.layers[1].kernel.numpy()
    kernel[np.abs(kernel) < np.quantile(np.abs(kernel), 0.8)] = 0
    model.layers[1].kernel.assign(kernel)
    data = export.to_tflite(model, quantize="int8", sparse=True, verify=False,
                            representative_data=x_train[:64])
    runner = LiteRTModel(data)
    for call in (lambda: runner.predict(x_train[:2]), lambda: runner.benchmark(num_runs=2)):
        with pytest.raises(ValueError, match=r"LiteRT could not run the model: .*"
                                             r"XNNPACK refused an op; kernels='builtin'"):
            call()

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
