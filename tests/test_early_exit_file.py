"""The single-file early-exit model: one .tflite with an IF per early exit."""

import os

import keras
import numpy as np
import pytest

from keras_compress import _tflite
from keras_compress.early_exit import _verify_file
from keras_compress.early_exit import add_early_exits
from keras_compress.early_exit import compile_multi_exit
from keras_compress.early_exit import early_exit_predict
from keras_compress.early_exit import export_early_exit
from keras_compress.early_exit import export_early_exit_file
from keras_compress.export import to_micro
from keras_compress.runtime import EarlyExitRunner
from keras_compress.runtime import LiteRTModel
from keras_compress.runtime import MicroModel


@pytest.fixture(scope="module")
def multi_exit(digits):
    """A 3-exit digits CNN (exits after block0 and block1, then the final)."""
    (x_train, y_train), _ = digits
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="block0")(inputs)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu",
                            name="block1")(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="block2")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(10, name="classifier")(x)
    backbone = keras.Model(inputs, outputs, name="digits_cnn")
    model = add_early_exits(backbone, ["block0", "block1"], head={"filters": 16})
    trainer = compile_multi_exit(model, keras.optimizers.Adam(1e-2))
    trainer.fit(x_train, y_train, epochs=8, batch_size=64, verbose=0)
    return backbone, model


def _params(data):
    """Every quantized tensor's (scale, zero point) of a model, as a set."""
    model = _tflite.parse(data)
    found = set()
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            q = tensor.quantization
            if q is not None and q.scale is not None and len(q.scale):
                found.add((tuple(np.round(q.scale, 12)), tuple(q.zeroPoint)))
    return found


def test_float_file_decides_as_early_exit_predict(multi_exit, digits, tmp_path):
    _, model = multi_exit
    _, (x_test, y_test) = digits
    path = os.path.join(tmp_path, "ee.tflite")
    for criterion, threshold in (("max_prob", 0.9), ("entropy", 0.3)):
        data = export_early_exit_file(model, path, threshold=threshold, criterion=criterion,
                                      verify_data=x_test[:64])
        with open(path, "rb") as f:
            assert f.read() == data
        want = early_exit_predict(model, x_test, threshold, criterion)
        runner = EarlyExitRunner(path)
        got = runner.predict(x_test)
        # Every test sample: the same exit and class as Keras.
        np.testing.assert_array_equal(got.exits, want.exits)
        np.testing.assert_array_equal(got.predictions, want.predictions)
        np.testing.assert_allclose(got.probabilities, want.probabilities, atol=1e-4)
        np.testing.assert_array_equal(got.macs, want.macs)
        # The test means something only if samples leave at several exits.
        assert len(np.unique(want.exits)) >= 2, np.bincount(want.exits)
        assert got.accuracy(y_test) > 0.85
    # Outputs in order, with names; batch 1; one IF per early exit.
    lite = LiteRTModel(data)
    assert [o.name for o in lite.outputs] == ["probabilities", "exit", "prediction"]
    assert lite.inputs[0].shape == (1, 8, 8, 1)
    delegation = lite.delegation()
    ops = [op["op"] for op in delegation["ops"]]
    assert ops.count("IF") == 1  # main's; the second sits in stage 1's subgraph
    # main, stage 1, stage 2 and the two "exit here" branches.
    assert delegation["subgraphs"] == len(_tflite.parse(data).subgraphs) == 5
    # XNNPACK takes main's stage (block0's and the head's convolutions).
    assert [op["xnnpack"] for op in delegation["ops"] if op["op"] == "CONV_2D"] == [True] * 2


def test_int8_file_matches_the_int8_chain_in_litert_and_tflm(multi_exit, digits, tmp_path):
    _, model = multi_exit
    (x_train, _), (x_test, y_test) = digits
    x = x_test[:120]
    data = export_early_exit_file(model, threshold=0.8, quantize="int8",
                                  representative_data=x_train[:200], verify_data=x)
    chain = os.path.join(tmp_path, "chain")
    export_early_exit(model, chain, threshold=0.8, quantize="int8",
                      representative_data=x_train[:200], batch_size=1)
    # The stages' quantization parameters are the chain's.
    for j in range(3):
        with open(os.path.join(chain, f"stage_{j}.tflite"), "rb") as f:
            assert _params(f.read()) <= _params(data)
    want = EarlyExitRunner(chain).predict(x)
    path = os.path.join(tmp_path, "ee_int8.tflite")
    with open(path, "wb") as f:
        f.write(data)
    got = EarlyExitRunner(path).predict(x)
    np.testing.assert_array_equal(got.exits, want.exits)
    np.testing.assert_array_equal(got.predictions, want.predictions)
    assert len(np.unique(want.exits)) >= 2
    # In TFLM: the same decisions as the chain's stages run in TFLM (whose
    # int8 kernels may round a value differently from LiteRT's).
    micro = EarlyExitRunner(path, runtime="micro").predict(x)
    stages = [MicroModel(os.path.join(chain, f"stage_{j}.tflite")) for j in range(3)]
    kinds = [False] * 3  # the exits give logits
    want_exits, want_predictions = _verify_file.staged_decisions(
        stages, x, kinds, "max_prob", [0.8, 0.8])
    np.testing.assert_array_equal(micro.exits, want_exits)
    np.testing.assert_array_equal(micro.predictions, want_predictions)
    assert np.mean(micro.exits == want.exits) >= 0.9
    assert micro.accuracy(y_test[:120]) > 0.85


def test_threshold_input_moves_the_exits(multi_exit, digits, tmp_path):
    _, model = multi_exit
    _, (x_test, _) = digits
    x = x_test[:80]
    path = os.path.join(tmp_path, "ee.tflite")
    export_early_exit_file(model, path, threshold=0.9, threshold_input=True,
                           verify_data=x)
    lite = LiteRTModel(path)
    assert [i.name for i in lite.inputs] == ["input", "threshold"]
    previous = None
    for t in (0.3, 0.6, 0.9, 0.99):
        got = EarlyExitRunner(path, threshold=t).predict(x)
        want = early_exit_predict(model, x, t)
        np.testing.assert_array_equal(got.exits, want.exits)
        if previous is not None:
            assert np.all(got.exits >= previous)  # a higher bar never exits earlier
        previous = got.exits
    # Thresholds no confidence passes: every sample runs every stage.
    never = lite.predict([x, np.full((len(x), 2), 2.0, np.float32)])
    assert np.all(never[1] == 2)
    # One threshold per exit.
    got = EarlyExitRunner(path, threshold=[0.99, 0.3]).predict(x)
    np.testing.assert_array_equal(
        got.exits, early_exit_predict(model, x, [0.99, 0.3]).exits)


def test_profile_splits_latency_by_exit(multi_exit, digits, tmp_path):
    _, model = multi_exit
    (x_train, _), (x_test, _) = digits
    path = os.path.join(tmp_path, "ee.tflite")
    export_early_exit_file(model, path, threshold=0.9, quantize="int8",
                           representative_data=x_train[:100], verify=False)
    for runtime in ("litert", "micro"):
        report = EarlyExitRunner(path, runtime=runtime).profile(x_test[:60], repeats=3)
        exits = report["exits"]
        assert len(report["per_sample_ms"]) == 60
        assert sum(e["samples"] for e in report["by_exit"]) == 60
        for e in report["by_exit"]:
            assert e["samples"] == int(np.sum(exits == e["exit"]))
        runner = EarlyExitRunner(path, runtime=runtime)
        np.testing.assert_array_equal(exits, runner.predict(x_test[:60]).exits)
        by_exit = report["by_exit"]
        assert by_exit[1]["samples"] and by_exit[2]["samples"]
        if runtime == "micro":
            # TFLM's reference kernels: time follows the MACs (exit 1 runs a
            # third of them).
            assert by_exit[1]["median_ms"] < 0.8 * by_exit[2]["median_ms"]


def test_to_micro_writes_the_int8_file(multi_exit, digits, tmp_path):
    _, model = multi_exit
    (x_train, _), (x_test, _) = digits
    data = export_early_exit_file(model, threshold=0.9, quantize="int8",
                                  threshold_input=True,
                                  representative_data=x_train[:100], verify=False)
    report = to_micro(data, os.path.join(tmp_path, "bundle"), "early_exit")
    assert "IF" in report["ops"] and "AddIf" in report["resolver"]
    assert report["early_exit"]["num_exits"] == 3
    assert report["arena_bytes"] > 0
    with open(os.path.join(tmp_path, "bundle", "early_exit.h")) as f:
        assert "AddIf" in f.read()
    # A float file is refused: microcontroller kernels are integer kernels.
    float_data = export_early_exit_file(model, verify=False)
    with pytest.raises(ValueError, match="full-int8"):
        to_micro(float_data, os.path.join(tmp_path, "other"), "early_exit")


def test_bad_input_and_nothing_written(multi_exit, digits, tmp_path, monkeypatch):
    backbone, model = multi_exit
    _, (x_test, _) = digits
    path = os.path.join(tmp_path, "ee.tflite")
    with pytest.raises(ValueError, match="multi-exit model"):
        export_early_exit_file(backbone, path)
    for bad in (0.0, 1.5, -0.1, [0.9]):
        with pytest.raises(ValueError, match="threshold"):
            export_early_exit_file(model, path, threshold=bad)
    with pytest.raises(ValueError, match="criterion"):
        export_early_exit_file(model, path, criterion="margin")
    with pytest.raises(ValueError, match="representative_data"):
        export_early_exit_file(model, path, quantize="int8")
    with pytest.raises(TypeError, match="threshold_input"):
        export_early_exit_file(model, path, threshold_input="yes")
    assert not os.path.exists(path)

    # A file that does not decide as its stages (its baked threshold is
    # not the one verified) is refused, and nothing is written.
    from keras_compress.early_exit import _stitch

    original = _stitch.stitch

    def wrong_threshold(stages, kinds, criterion, thresholds, *args):
        return original(stages, kinds, criterion, [0.05] * len(thresholds), *args)

    monkeypatch.setattr(_stitch, "stitch", wrong_threshold)
    with pytest.raises(RuntimeError, match="does not decide as its stages"):
        export_early_exit_file(model, path, threshold=0.99, verify_data=x_test[:40])
    assert not os.path.exists(path)
    monkeypatch.undo()

    export_early_exit_file(model, path, threshold=0.9, verify=False)
    with pytest.raises(ValueError, match="built in"):
        EarlyExitRunner(path, threshold=0.5)
    with pytest.raises(ValueError, match="criterion"):
        EarlyExitRunner(path, criterion="entropy")
    with pytest.raises(ValueError, match="runtime"):
        EarlyExitRunner(path, runtime="onnx")
    plain = os.path.join(tmp_path, "plain.tflite")
    from keras_compress.export import to_tflite

    to_tflite(backbone, plain)
    with pytest.raises(ValueError, match="export_early_exit_file"):
        EarlyExitRunner(plain)


def test_threshold_sweep_measures_latency(multi_exit, digits, tmp_path):
    from keras_compress.early_exit import threshold_sweep

    _, model = multi_exit
    _, (x_test, y_test) = digits
    x, y = x_test[:80], y_test[:80]
    sweep = threshold_sweep(model, x, y, [0.3, 0.9, 0.999], latency="micro",
                            latency_samples=20)
    plain = threshold_sweep(model, x, y, [0.3, 0.9, 0.999])
    assert sweep.latency == "micro" and sweep.plain_latency_ms > 0
    for row, same in zip(sweep.rows, plain.rows):
        assert row["accuracy"] == same["accuracy"]  # measuring changes nothing else
        assert row["latency_ms"] > 0
        assert row["speedup"] == pytest.approx(sweep.plain_latency_ms / row["latency_ms"])
    # TFLM's reference kernels: a low threshold (most samples leave early)
    # is faster than a high one.
    assert sweep.rows[0]["latency_ms"] < sweep.rows[-1]["latency_ms"]
    assert "us/sample" in str(sweep) and "us/sample" not in str(plain)
    path = os.path.join(tmp_path, "sweep.png")
    sweep.plot(path, x="latency")
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="measured latency"):
        plain.plot(x="latency")
    with pytest.raises(ValueError, match="latency"):
        threshold_sweep(model, x, y, [0.9], latency="gpu")
