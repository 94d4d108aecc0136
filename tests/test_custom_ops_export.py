"""`binary="packed"`: binary layers as bit-packed custom operators, checked in
LiteRT (through the keras-compress delegate) and TFLite Micro on real data."""

import functools
import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_compress import _tflite
from keras_compress import analysis
from keras_compress import custom_ops
from keras_compress import export
from keras_compress import layers as kl
from keras_compress import quantization
from keras_compress.runtime import LiteRTModel
from keras_compress.runtime import MicroModel
from keras_compress.runtime.micro import op_names

pytestmark = pytest.mark.filterwarnings("ignore:binary='packed'")


def _needs_runtimes():
    try:
        custom_ops.build("litert")
        custom_ops.micro_registerers()
    except custom_ops.BuildError as e:
        pytest.skip(f"the packed operators cannot run here: {e}")


def _binary_mlp():
    inputs = keras.Input((8, 8, 1))
    h = keras.layers.Flatten()(inputs)
    h = kl.BinaryDense(128)(h)  # int8 inputs, binary weights (BWN)
    h = keras.layers.BatchNormalization()(h)
    h = kl.BinaryDense(128, binarize_inputs=True)(h)  # XNOR
    h = keras.layers.BatchNormalization()(h)
    h = kl.BinaryDense(10, binarize_inputs=True)(h)
    return keras.Model(inputs, keras.layers.BatchNormalization()(h), name="binary_mlp")


def _binary_cnn():
    inputs = keras.Input((8, 8, 1))
    h = kl.BinaryConv2D(16, 3, padding="same")(inputs)  # 1 channel: stays int8
    h = keras.layers.BatchNormalization()(h)
    h = kl.BinaryConv2D(32, 3, strides=2, padding="same", binarize_inputs=True)(h)
    h = keras.layers.BatchNormalization()(h)
    h = kl.BinaryConv2D(32, 3, binarize_inputs=True)(h)  # valid padding
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.Flatten()(h)
    h = kl.BinaryDense(10, binarize_inputs=True)(h)
    return keras.Model(inputs, keras.layers.BatchNormalization()(h), name="binary_cnn")


def _trained_qat(build, digits, seed):
    (x_train, y_train), _ = digits
    keras.utils.set_random_seed(seed)
    model = build()
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(keras.optimizers.Adam(3e-3), loss, metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=6, batch_size=64, verbose=0)
    qat = quantization.quantize_model(model)
    qat.compile(keras.optimizers.Adam(1e-3), loss, metrics=["accuracy"])
    qat.fit(x_train, y_train, epochs=1, batch_size=64, verbose=0)
    return qat


@functools.lru_cache(maxsize=None)
def _exports(kind):
    """A trained binary QAT model with its builtin and packed int8 files
    (once per process, however pytest orders the tests)."""
    from keras_compress import datasets

    digits = datasets.load_digits()
    (x_train, _), _ = digits
    qat = _trained_qat(_binary_mlp if kind == "mlp" else _binary_cnn, digits, seed=4)
    kwargs = dict(quantize="int8", representative_data=x_train[:200],
                  int8_io=True, batch_size=1)
    return qat, export.to_tflite(qat, **kwargs), export.to_tflite(qat, binary="packed", **kwargs)


@pytest.fixture(params=["mlp", "cnn"])
def binary(request):
    """Both networks: for the checks that differ between FC and CONV_2D."""
    _needs_runtimes()
    return _exports(request.param)


@pytest.fixture
def mlp():
    """The MLP alone: for the checks the network does not change."""
    _needs_runtimes()
    return _exports("mlp")


def _ops(data):
    return op_names(_tflite.parse(data))


def test_packed_file_equals_builtin_in_litert_and_tflm(binary, digits):
    qat, builtin, packed = binary
    _, (x_test, y_test) = digits
    assert any(op.startswith("CUSTOM:KC_BINARY_") for op in _ops(packed))
    want = LiteRTModel(builtin, kernels="reference").predict(x_test, raw=True)
    got = LiteRTModel(packed, kernels="reference").predict(x_test, raw=True)
    np.testing.assert_array_equal(got, want)  # every test sample, bit for bit
    micro_want = MicroModel(builtin).predict(x_test, raw=True)
    micro_got = MicroModel(packed).predict(x_test, raw=True)
    np.testing.assert_array_equal(micro_got, micro_want)
    # The builtin file's accuracy exactly; the Keras QAT model's within 3
    # points (int8 activations move a few near-zero values across a sign).
    keras_acc = float(np.mean(np.argmax(qat.predict(x_test, verbose=0), 1) == y_test))
    packed_acc = MicroModel(packed).evaluate(x_test, y_test)
    assert packed_acc == MicroModel(builtin).evaluate(x_test, y_test)
    assert abs(packed_acc - keras_acc) <= 0.03
    assert packed_acc > 0.75


def test_packed_file_is_smaller_and_summarized_as_binary(binary):
    _, builtin, packed = binary
    assert len(packed) < 0.6 * len(builtin)
    ours, theirs = analysis.summarize(packed), analysis.summarize(builtin)
    rows = [r for r in ours.rows if r.kind.startswith("CUSTOM:KC_BINARY_")]
    assert rows and all(r.binary_macs == r.macs > 0 for r in rows)
    # The packed operators count the weights and MACs the builtin ones did.
    def weights(summary):
        kinds = ("FULLY_CONNECTED", "CONV_2D", "CUSTOM:KC_BINARY_FC",
                 "CUSTOM:KC_BINARY_CONV2D")
        return sum(r.params for r in summary.rows if r.kind in kinds)

    assert ours.totals.macs == theirs.totals.macs
    assert weights(ours) == weights(theirs)
    assert ours.totals.bytes_stored < theirs.totals.bytes_stored / 2
    assert "binary MACs" in ours.table()


def test_dynamic_batch_and_xnnpack(binary, digits):
    qat, _, _ = binary
    (x_train, _), (x_test, _) = digits
    kwargs = dict(quantize="int8", representative_data=x_train[:200])
    builtin = export.to_tflite(qat, **kwargs)
    packed = export.to_tflite(qat, binary="packed", **kwargs)
    want = LiteRTModel(builtin, kernels="reference").predict(x_test, batch_size=50)
    got = LiteRTModel(packed, kernels="reference").predict(x_test, batch_size=50)
    np.testing.assert_array_equal(got, want)
    # With XNNPACK on the other operators (which rounds its own way), the
    # predictions agree on almost every sample.
    fast = LiteRTModel(packed).predict(x_test)
    assert np.mean(np.argmax(fast, 1) == np.argmax(want, 1)) >= 0.97


def test_default_export_is_unchanged(mlp, digits):
    qat, builtin, _ = mlp
    (x_train, _), _ = digits
    ops = _ops(builtin)
    assert not any(op.startswith("CUSTOM:") for op in ops)
    assert "FULLY_CONNECTED" in ops
    again = export.to_tflite(qat, quantize="int8", representative_data=x_train[:200],
                             int8_io=True, batch_size=1, binary=None)
    # The same file but for tensor names (TensorFlow numbers its traces).
    assert export.lean_tflite(again) == export.lean_tflite(builtin)


def _mutated(packed, change):
    model = _tflite.parse(packed)
    graph = model.subgraphs[0]
    codes = model.operatorCodes
    op = next(o for o in graph.operators
              if _tflite.builtin_op_name(codes[o.opcodeIndex]).startswith("CUSTOM:KC_"))
    change(model, graph, op)
    return _tflite.serialize(model)


def _set_field(name, value):
    from keras_compress.custom_ops import options as op_options

    def change(model, graph, op):
        o = bytearray(bytes(op.customOptions))
        index = 4 + 4 * op_options.FIELDS.index(name)
        o[index:index + 4] = int(value).to_bytes(4, "little", signed=True)
        op.customOptions = np.frombuffer(bytes(o), np.uint8)
    return change


def _break_magic(model, graph, op):
    op.customOptions = np.frombuffer(b"XXXX" + bytes(op.customOptions)[4:], np.uint8)


def _bad_shift(model, graph, op):
    from keras_compress.custom_ops import options as op_options

    o = op_options.parse(bytes(op.customOptions))
    table = np.frombuffer(
        np.asarray(model.buffers[graph.tensors[op.inputs[2]].buffer].data, np.uint8).tobytes(),
        np.int32).copy()
    columns = op_options.table_columns(o)
    if "shift" in columns:
        table.reshape(o["out_c"], -1)[0, columns.index("shift")] = 45
        model.buffers[graph.tensors[op.inputs[2]].buffer].data = np.frombuffer(
            table.tobytes(), np.uint8)
    else:
        _set_field("shift", 45)(model, graph, op)


@pytest.mark.parametrize("mutation", ["magic", "out_c", "shift"])
def test_corrupt_operator_gives_an_error_not_a_crash(mlp, digits, tmp_path, mutation):
    _, _, packed = mlp
    _, (x_test, _) = digits
    change = {"magic": _break_magic, "out_c": _set_field("out_c", 3),
              "shift": _bad_shift}[mutation]
    path = tmp_path / "corrupt.tflite"
    path.write_bytes(_mutated(packed, change))
    np.save(tmp_path / "x.npy", x_test[:4])
    # Each runtime in a process of its own: a crash would show as a signal.
    script = textwrap.dedent(f"""
        import json, sys, numpy as np
        from keras_compress import analysis
        from keras_compress.runtime import LiteRTModel, MicroModel
        x = np.load({str(tmp_path / 'x.npy')!r})
        results = {{}}
        for name, run in [("summarize", lambda: analysis.summarize({str(path)!r})),
                          ("litert", lambda: LiteRTModel({str(path)!r}).predict(x)),
                          ("micro", lambda: MicroModel({str(path)!r}, arena_size=1 << 20).predict(x))]:
            try:
                run()
                results[name] = "ran"
            except (ValueError, RuntimeError) as e:
                results[name] = type(e).__name__ + ": " + str(e)
        print(json.dumps(results))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.loads(result.stdout.strip().splitlines()[-1])
    for name in ("litert", "micro"):
        assert results[name] != "ran", (name, results)
    if mutation != "shift":  # the table's values are the kernels' to check
        assert results["summarize"].startswith("ValueError"), results
    assert "keras-compress binary operator" in results["litert"] or "KC_BINARY" in results["litert"]


def test_bad_arguments(mlp, digits, tmp_path):
    qat, builtin, _ = mlp
    (x_train, _), _ = digits
    with pytest.raises(ValueError, match="Expected quantize='int8'"):
        export.to_tflite(qat, binary="packed")
    with pytest.raises(ValueError, match="Expected `binary` to be None or 'packed'"):
        export.to_tflite(qat, quantize="int8", representative_data=x_train[:50], binary="bits")
    with pytest.raises(ValueError, match="Expected sparse=False"):
        export.to_tflite(qat, quantize="int8", representative_data=x_train[:50],
                         binary="packed", sparse=True)
    with pytest.raises(ValueError, match="a given .tflite is written as it is"):
        export.to_micro(builtin, tmp_path / "b", "m", binary="packed")
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="Expected a model with such layers"):
        export.to_tflite(plain, quantize="int8",
                         representative_data=np.random.rand(16, 4).astype("float32"),
                         binary="packed")


def test_micro_bundle_carries_the_kernel_sources(mlp, digits, tmp_path):
    qat, builtin, packed = mlp
    (x_train, _), (x_test, y_test) = digits
    report = export.to_micro(qat, tmp_path / "bundle", "net",
                             representative_data=x_train[:200], binary="packed")
    folder = tmp_path / "bundle"
    for name in custom_ops.FIRMWARE_SOURCES:
        assert (folder / name).read_text() == (
            open(f"{custom_ops.source_dir()}/{name}").read())
    assert report["custom_ops"]["registration"] == "KcAddBinaryOps(resolver)"
    assert "KcAddBinaryOps(resolver);" in (folder / "net.h").read_text()
    assert report["flash_bytes"] == (folder / "net.tflite").stat().st_size
    plain = export.to_micro(qat, tmp_path / "plain", "net",
                            representative_data=x_train[:200])
    assert report["flash_bytes"] < 0.6 * plain["flash_bytes"]
    micro = MicroModel(folder / "net.tflite")
    assert micro.evaluate(x_test, y_test) == MicroModel(tmp_path / "plain" / "net.tflite").evaluate(x_test, y_test)
