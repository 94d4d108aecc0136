"""Byte breakdowns, lean .tflite files and sparse exports, in real runtimes."""

import copy as copy_module
import os
import warnings

import keras
import numpy as np
import pytest

from keras_compress import _tflite
from keras_compress import datasets
from keras_compress import export
from keras_compress.analysis import file_breakdown
from keras_compress.analysis import summarize
from keras_compress import _inputs
from keras_compress.export import _sparse
from keras_compress.export import tflite as tflite_export
from keras_compress.quantizers.base import export_mode
from keras_compress.runtime import LiteRTModel, MicroModel


@pytest.fixture(scope="module")
def mnist1d():
    return datasets.load_mnist1d()


@pytest.fixture(scope="module")
def conv1d(mnist1d):
    """A 3,274-parameter Conv1D net, trained briefly on MNIST-1D."""
    (x_train, y_train), _ = mnist1d
    keras.utils.set_random_seed(2)
    model = keras.Sequential([
        keras.Input((40, 1)),
        keras.layers.Conv1D(16, 5, strides=2, activation="relu"),
        keras.layers.Conv1D(24, 3, strides=2, activation="relu"),
        keras.layers.Conv1D(24, 3, activation="relu"),
        keras.layers.GlobalAveragePooling1D(),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss="sparse_categorical_crossentropy")
    model.fit(x_train, y_train, epochs=4, batch_size=64, verbose=0)
    return model


@pytest.fixture(scope="module")
def conv1d_int8(conv1d, mnist1d):
    (x_train, _), _ = mnist1d
    return export.to_tflite(conv1d, quantize="int8", representative_data=x_train[:100],
                            int8_io=True, batch_size=1)


@pytest.fixture(scope="module")
def mlp(digits):
    """A 64-128-64-10 MLP trained briefly on the digits."""
    (x_train, y_train), _ = digits
    keras.utils.set_random_seed(3)
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train.reshape(-1, 64), y_train, epochs=8, batch_size=64, verbose=0)
    return model


@pytest.fixture(scope="module")
def pruned90(mlp):
    return _pruned(mlp, [0.9, 0.9, 0.9])


@pytest.fixture(scope="module")
def float_sparse90(pruned90):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # No fallback to the dense file.
        return export.to_tflite(pruned90, sparse=True, lean=True)


def _pruned(model, fractions):
    """A copy with the smallest `fractions[k]` of layer k's kernel zeroed."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    for layer, fraction in zip(copy.layers, fractions):
        kernel, bias = layer.get_weights()
        kernel[np.abs(kernel) < np.quantile(np.abs(kernel), fraction)] = 0.0
        layer.set_weights([kernel, bias])
    return copy


def _flat(digits):
    (x_train, y_train), (x_test, y_test) = digits
    return x_train.reshape(-1, 64), y_train, x_test.reshape(-1, 64), y_test


def _vector_bytes(values):
    return 0 if values is None else 4 + np.asarray(values).nbytes


# -- the byte breakdown -------------------------------------------------------


def test_breakdown_sums_to_the_file_size_and_counts_fields(cnn_float, cnn_int8, tmp_path):
    lean = export.lean_tflite(cnn_int8)
    for data in (cnn_float, cnn_int8, lean):
        b = file_breakdown(data)
        assert sum(b.categories.values()) == b.file_bytes == len(data)
        # Constant data is what summarize counts as stored bytes.
        stored = b.categories["weights"] + b.categories["biases"] \
            + b.categories["other_constants"]
        assert stored == summarize(data).totals.bytes_stored
    # Categories counted independently from the parsed model.
    model = _tflite.parse(cnn_int8)
    tensors = model.subgraphs[0].tensors
    quantized = [t.quantization for t in tensors
                 if t.quantization is not None and t.quantization.scale is not None]
    b = file_breakdown(cnn_int8)
    assert b.categories["quant_zero_points"] == sum(
        _vector_bytes(q.zeroPoint) for q in quantized)
    assert b.categories["quant_scales"] == sum(_vector_bytes(q.scale) for q in quantized)
    assert b.categories["tensor_names"] == sum(len(t.name) + 5 for t in tensors)
    int8_weights = sum(
        int(np.prod(t.shape)) for t in tensors
        if t.type == _tflite.schema.TensorType.INT8
        and model.buffers[t.buffer].data is not None
    )
    assert b.categories["weights"] == int8_weights
    assert b.categories["metadata"] > 0 and b.categories["signature_defs"] > 0
    path = tmp_path / "cnn.tflite"
    path.write_bytes(cnn_int8)
    from_path = file_breakdown(path)
    assert from_path.categories == b.categories and from_path.name == "cnn.tflite"
    assert "quant_zero_points" in str(b) and b.to_dict()["file_bytes"] == len(cnn_int8)


def test_breakdown_of_a_sparse_file_has_index_bytes(float_sparse90):
    b = file_breakdown(float_sparse90)
    assert sum(b.categories.values()) == len(float_sparse90)
    assert b.categories["sparsity"] > 1000


def test_breakdown_rejects_what_is_no_tflite():
    with pytest.raises(ValueError, match="TFLite"):
        file_breakdown(b"not a model at all")


# -- the lean pass --------------------------------------------------------------


def test_lean_int8_is_bit_identical_in_litert_and_tflm(cnn_int8, digits):
    _, (x_test, _) = digits
    lean = export.lean_tflite(cnn_int8, sample_inputs=x_test[:16])
    assert len(lean) < len(cnn_int8) - 2500
    parts = file_breakdown(lean).categories
    assert parts["tensor_names"] == parts["metadata"] == parts["signature_defs"] == 0
    for kernels in ("xnnpack", "reference"):
        want = LiteRTModel(cnn_int8, kernels=kernels).predict(x_test, raw=True)
        got = LiteRTModel(lean, kernels=kernels).predict(x_test, raw=True)
        assert got.dtype == np.int8 and np.array_equal(got, want), kernels
    original, small = MicroModel(cnn_int8), MicroModel(lean)
    assert np.array_equal(small.predict(x_test, raw=True), original.predict(x_test, raw=True))
    assert small.arena_bytes == original.arena_bytes


def test_lean_float_is_bit_identical(cnn_float, digits):
    _, (x_test, _) = digits
    lean = export.lean_tflite(cnn_float)
    assert len(lean) < len(cnn_float) - 2500
    for kernels in ("xnnpack", "reference"):
        want = LiteRTModel(cnn_float, kernels=kernels).predict(x_test)
        got = LiteRTModel(lean, kernels=kernels).predict(x_test)
        assert np.array_equal(got, want), kernels
    runner = LiteRTModel(lean)
    assert [i.name for i in runner.inputs] == ["input_0"] and runner.dynamic_batch


def test_to_tflite_lean_narrows_the_float_to_int8_gap(conv1d, mnist1d):
    (x_train, _), (x_test, _) = mnist1d
    kwargs = dict(quantize="int8", representative_data=x_train[:100])
    full = export.to_tflite(conv1d, **kwargs)
    lean = export.to_tflite(conv1d, lean=True, **kwargs)
    for kernels in ("xnnpack", "reference"):
        assert np.array_equal(LiteRTModel(lean, kernels=kernels).predict(x_test, raw=True),
                              LiteRTModel(full, kernels=kernels).predict(x_test, raw=True))
    float_full = export.to_tflite(conv1d)
    float_lean = export.lean_tflite(float_full, sample_inputs=x_test[:32])
    assert len(float_lean) / len(lean) > len(float_full) / len(full) + 0.1
    assert len(lean) < 0.8 * len(full)


def test_micro_lean_shares_zero_points_tflm_only(conv1d_int8, mnist1d):
    _, (x_test, _) = mnist1d
    x_test = x_test[:300]
    portable = export.lean_tflite(conv1d_int8)
    micro = export.lean_tflite(conv1d_int8, micro=True, sample_inputs=x_test[:16])
    zero_points = file_breakdown(micro).categories["quant_zero_points"]
    assert zero_points < file_breakdown(portable).categories["quant_zero_points"] / 4
    assert len(micro) < len(portable) - 800
    want = MicroModel(conv1d_int8).predict(x_test, raw=True)
    assert np.array_equal(MicroModel(micro).predict(x_test, raw=True), want)
    assert np.array_equal(MicroModel(portable).predict(x_test, raw=True), want)
    with pytest.raises(RuntimeError, match="zero_point values"):
        LiteRTModel(micro)


def test_to_micro_writes_the_lean_file(conv1d_int8, mnist1d, tmp_path):
    _, (x_test, _) = mnist1d
    x_test = x_test[:300]
    reports = {
        lean: export.to_micro(conv1d_int8, tmp_path / str(lean), "net", lean=lean)
        for lean in (True, "micro")
    }
    files = {lean: (tmp_path / str(lean) / "net.tflite").read_bytes() for lean in reports}
    assert files[True] == export.lean_tflite(conv1d_int8)
    assert len(files["micro"]) < len(files[True]) < len(conv1d_int8)
    assert reports["micro"]["lean"] == "micro" and reports[True]["lean"] is True
    original = MicroModel(conv1d_int8)
    # Same RAM: the lean pass only shrinks flash.
    assert {r["arena_bytes"] for r in reports.values()} == {original.arena_bytes}
    want = original.predict(x_test, raw=True)
    for data in files.values():
        assert np.array_equal(MicroModel(data).predict(x_test, raw=True), want)


def test_multi_input_multi_output_order_survives_lean(rng):
    keras.utils.set_random_seed(0)
    a, b = keras.Input((6,)), keras.Input((3,))
    h = keras.layers.Dense(8, activation="relu")(keras.layers.Concatenate()([a, b]))
    first = keras.layers.Dense(5)(h)
    second = keras.layers.Dense(2, activation="softmax")(keras.layers.Dense(4)(b))
    model = keras.Model([a, b], [first, second])
    feed = [rng.uniform(size=(32, 6)).astype("float32"),
            rng.uniform(size=(32, 3)).astype("float32")]
    want = model.predict(feed, verbose=0)
    int8 = export.to_tflite(model, quantize="int8", representative_data=feed,
                            int8_io=True, batch_size=1)
    parsed = _tflite.parse(int8)
    graph = parsed.subgraphs[0]
    assert [int(graph.tensors[i].shape[-1]) for i in graph.outputs] == [5, 2]
    # TensorFlow's SavedModel route lists these outputs in the other order
    # (only the signature tells Keras's order): make this file do so too,
    # so that the test means something.
    graph.outputs = graph.outputs[::-1].copy()
    int8 = _tflite.serialize(parsed)
    lean = export.lean_tflite(int8, sample_inputs=feed)
    float_lean = export.to_tflite(model, lean=True)
    got = LiteRTModel(float_lean).predict(feed)
    assert [g.shape for g in got] == [(32, 5), (32, 2)]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, atol=1e-5)
    for runner in (LiteRTModel(lean), MicroModel(lean)):
        got = runner.predict(feed)
        assert [g.shape for g in got] == [(32, 5), (32, 2)]
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, atol=0.1)
    reference = LiteRTModel(lean, kernels="reference").predict(feed, raw=True)
    micro = MicroModel(lean).predict(feed, raw=True)
    for m, r in zip(micro, reference):
        assert np.abs(m.astype(int) - r.astype(int)).max() <= 1


def test_lean_shares_byte_identical_constants(rng):
    a, b = keras.Input((6,)), keras.Input((6,))
    first, second = keras.layers.Dense(4), keras.layers.Dense(4)
    model = keras.Model([a, b], [first(a), second(b)])
    second.set_weights(first.get_weights())
    model_t = _tflite.parse(export.to_tflite(model))
    # The converter already shares the kernel; give the second op a copy.
    graph = model_t.subgraphs[0]
    ops = graph.operators
    shared = int(ops[0].inputs[1])
    assert int(ops[1].inputs[1]) == shared
    copy = copy_module.deepcopy(graph.tensors[shared])
    buffer = _tflite.schema.BufferT()
    buffer.data = np.array(model_t.buffers[copy.buffer].data, dtype=np.uint8)
    model_t.buffers.append(buffer)
    copy.buffer = len(model_t.buffers) - 1
    graph.tensors.append(copy)
    inputs = np.array(ops[1].inputs)
    inputs[1] = len(graph.tensors) - 1
    ops[1].inputs = inputs
    duplicated = _tflite.serialize(model_t)
    feed = [rng.uniform(size=(8, 6)).astype("float32") for _ in range(2)]
    lean = export.lean_tflite(duplicated, sample_inputs=feed)
    lean_t = _tflite.parse(lean)
    kernels = [int(op.inputs[1]) for op in lean_t.subgraphs[0].operators]
    assert len({lean_t.subgraphs[0].tensors[i].buffer for i in kernels}) == 1
    assert file_breakdown(lean).categories["weights"] \
        == file_breakdown(duplicated).categories["weights"] - 4 * 6 * 4
    for g, w in zip(LiteRTModel(lean).predict(feed), model.predict(feed, verbose=0)):
        np.testing.assert_allclose(g, w, atol=1e-5)


def test_lean_keeps_indices_when_other_metadata_may_refer_to_them(cnn_int8):
    model_t = _tflite.parse(cnn_int8)
    buffer = _tflite.schema.BufferT()
    buffer.data = np.frombuffer(b"tensor 7, buffer 9", dtype=np.uint8).copy()
    model_t.buffers.append(buffer)
    entry = _tflite.schema.MetadataT()
    entry.name, entry.buffer = b"OfflineMemoryAllocation", len(model_t.buffers) - 1
    model_t.metadata.append(entry)
    with_metadata = _tflite.serialize(model_t)
    lean_t = _tflite.parse(export.lean_tflite(with_metadata))
    assert [m.name for m in lean_t.metadata] == [b"OfflineMemoryAllocation"]
    assert len(lean_t.buffers) == len(model_t.buffers)
    assert len(lean_t.subgraphs[0].tensors) == len(model_t.subgraphs[0].tensors)
    assert bytes(lean_t.buffers[entry.buffer].data) == b"tensor 7, buffer 9"


def test_summarize_works_on_lean_files(cnn_int8):
    before, after = summarize(cnn_int8), summarize(export.lean_tflite(cnn_int8))
    assert [r.kind for r in after.rows] == [r.kind for r in before.rows]
    for field in ("params", "nonzeros", "macs", "bytes_stored"):
        assert getattr(after.totals, field) == getattr(before.totals, field), field
    assert after.file_bytes < before.file_bytes
    assert after.rows[1].name == "op_1"


def test_lean_tflite_writes_atomically(cnn_int8, tmp_path):
    path = tmp_path / "lean.tflite"
    data = export.lean_tflite(cnn_int8, path)
    assert path.read_bytes() == data
    assert os.listdir(tmp_path) == ["lean.tflite"]
    with pytest.raises(ValueError, match="does not exist"):
        export.lean_tflite(cnn_int8, tmp_path / "missing" / "lean.tflite")


def test_invalid_lean_arguments(cnn, cnn_int8, tmp_path):
    with pytest.raises(TypeError, match="Received: lean='yes'"):
        export.to_tflite(cnn, lean="yes")
    with pytest.raises(ValueError, match=r"lean.*True, False or 'micro'.*lean='tiny'"):
        export.to_micro(cnn_int8, tmp_path / "b", "cnn", lean="tiny")
    assert not (tmp_path / "b").exists()
    with pytest.raises(TypeError, match="Received: micro=1"):
        export.lean_tflite(cnn_int8, micro=1)
    with pytest.raises(ValueError, match="TFLite"):
        export.lean_tflite(b"garbage" * 10)


# -- sparse exports -------------------------------------------------------------


def test_dynamic_sparse_export_of_a_pruned_mlp(pruned90, digits):
    _, _, x_test, _ = _flat(digits)
    pruned = pruned90
    data = export.to_tflite(pruned, quantize="dynamic", sparse=True)
    dense = export.to_tflite(pruned, quantize="dynamic")
    assert _sparse.has_integer_sparse_tensors(_tflite.parse(data))
    assert len(data) < len(dense) / 1.8
    want = pruned.predict(x_test, verbose=0)
    for kernels in ("builtin", "reference"):
        got = LiteRTModel(data, kernels=kernels).predict(x_test)
        assert np.abs(got - want).max() < 0.02
        assert np.mean(got.argmax(1) == want.argmax(1)) > 0.98
    # What the docstring says: XNNPACK refuses the int8 sparse weights.
    with pytest.raises(RuntimeError, match="XNNPACK refused"):
        LiteRTModel(data)
    lean = export.lean_tflite(data, sample_inputs=x_test[:32])  # Builtin kernels.
    assert len(lean) < len(data)
    assert np.array_equal(LiteRTModel(lean, kernels="builtin").predict(x_test),
                          LiteRTModel(data, kernels="builtin").predict(x_test))


def test_sparse_keeps_each_tensor_in_its_smaller_encoding(mlp, digits):
    x_train, _, x_test, _ = _flat(digits)
    # Layer 2 at 30% zeros: its int8 CSR arrays outweigh the zeros.
    pruned = _pruned(mlp, [0.9, 0.3, 0.9])
    kwargs = dict(quantize="int8", representative_data=x_train[:100])
    data = export.to_tflite(pruned, sparse=True, **kwargs)
    dense = export.to_tflite(pruned, **kwargs)
    specs = _inputs.tensor_specs(pruned)
    samples = _inputs.take_samples(x_train[:100], specs, 100)
    with export_mode():  # What the converter alone writes.
        raw = tflite_export._convert(pruned, specs, "int8", samples, False, True)
    raw_sparse = [t for t in _tflite.parse(raw).subgraphs[0].tensors
                  if t.sparsity is not None]
    assert sorted(int(t.shape[0]) for t in raw_sparse) == [10, 64, 128]
    model = _tflite.parse(data)
    sparse = [t for t in model.subgraphs[0].tensors if t.sparsity is not None]
    assert sorted(int(t.shape[0]) for t in sparse) == [10, 128]  # Layers 1 and 3.
    for t in sparse:
        assert _sparse.decode(model, t).nbytes > _sparse.sparse_cost(model, t, [])
    assert len(data) < len(dense)
    got = LiteRTModel(data, kernels="builtin").predict(x_test, raw=True)
    want = LiteRTModel(dense, kernels="builtin").predict(x_test, raw=True)
    assert np.array_equal(got, want)


def test_sparse_falls_back_to_the_dense_file(mlp, digits):
    x_train, _, _, _ = _flat(digits)
    pruned = _pruned(mlp, [0.4, 0.4, 0.4])
    kwargs = dict(quantize="int8", representative_data=x_train[:100])
    with pytest.warns(UserWarning, match="dense file was kept"):
        data = export.to_tflite(pruned, sparse=True, **kwargs)
    assert data == export.to_tflite(pruned, **kwargs)


def test_float_sparse_is_kept_and_runs_on_xnnpack(pruned90, float_sparse90, digits):
    _, _, x_test, _ = _flat(digits)
    assert len(float_sparse90) < len(export.to_tflite(pruned90)) / 3
    np.testing.assert_allclose(LiteRTModel(float_sparse90).predict(x_test),
                               pruned90.predict(x_test, verbose=0), atol=1e-5)
