"""The keras-compress command line, run as a user runs it."""

import json
import os
import subprocess
import sys

import pytest

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _run(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "keras_compress.cli", *args],
        capture_output=True, text=True, timeout=timeout, env=ENV,
    )


@pytest.fixture(scope="module")
def files(cnn, cnn_int8, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    paths = {
        "keras": folder / "cnn.keras",
        "int8": folder / "cnn_int8.tflite",
        "corrupt": folder / "corrupt.tflite",
        "truncated": folder / "truncated.tflite",
    }
    cnn.save(paths["keras"])
    paths["int8"].write_bytes(cnn_int8)
    paths["corrupt"].write_bytes(os.urandom(3000))
    paths["truncated"].write_bytes(cnn_int8[: len(cnn_int8) // 3])
    return paths


def test_report_tflite_and_keras(files):
    for kind in ("int8", "keras"):
        result = _run("report", str(files[kind]))
        assert result.returncode == 0, result.stderr
        assert "total" in result.stdout and "MACs" in result.stdout
    result = _run("report", "--json", str(files["int8"]))
    summary = json.loads(result.stdout)
    assert summary["source"] == "tflite" and summary["totals"]["macs"] > 0


def test_bench_int8(files):
    result = _run("bench", "--runs", "5", "--json", str(files["int8"]))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["latency"]["runs"] == 5 and report["latency"]["median_ms"] > 0
    assert report["tflm_arena_bytes"] > 0
    assert report["builtin_only"] == ["SOFTMAX"]


@pytest.mark.parametrize("command", ["report", "bench"])
@pytest.mark.parametrize("kind", ["corrupt", "truncated"])
def test_bad_files_are_errors_not_crashes(files, command, kind):
    result = _run(command, str(files[kind]))
    assert result.returncode == 1
    assert f"keras-compress {command}: error:" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_file():
    result = _run("report", "/nonexistent.tflite")
    assert result.returncode == 1 and "Received: path='/nonexistent.tflite'" in result.stderr


@pytest.mark.slow
def test_demo_end_to_end(tmp_path):
    out = tmp_path / "demo"
    result = _run("demo", "--out", str(out), "--epochs", "3", timeout=600)
    assert result.returncode == 0, result.stderr
    for name in ("accuracy_vs_size.png", "results.json", "digits_cnn.keras",
                 "digits_int8.tflite", "micro/digits.c", "micro/digits_report.json"):
        assert (out / name).is_file(), name
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert [r["runtime"] for r in rows].count("LiteRT+XNNPACK") == 8
    by_name = {r["artifact"]: r for r in rows}
    # The pruning stage: a stripped 80%-sparse model and smaller sparse files.
    import keras
    import numpy as np

    pruned = keras.saving.load_model(out / "digits_cnn_pruned.keras")
    for layer in pruned.layers:
        if layer.name.startswith(("conv2d", "dense", "depthwise")):
            kernel = keras.ops.convert_to_numpy(layer.weights[0])
            assert (kernel == 0).sum() == round(0.8 * kernel.size), layer.name
    for label in ("float32", "int8"):
        row = by_name[f"TFLite {label} pruned 80% sparse"]
        assert row["size_bytes"] == (out / row["file"]).stat().st_size
        assert row["size_bytes"] < 0.75 * by_name[f"TFLite {label}"]["size_bytes"]
        assert 0.0 <= row["accuracy"] <= 1.0  # 3 epochs: accuracy is not the point
    assert np.isfinite(by_name["TFLite int8 pruned 80% sparse"]["latency_ms"])
    # The structured stage: half the channels, a really smaller model.
    smaller = keras.saving.load_model(out / "digits_cnn_channels.keras")
    assert smaller.count_params() < 0.4 * keras.saving.load_model(
        out / "digits_cnn.keras").count_params()
    for label in ("float32", "int8"):
        row = by_name[f"TFLite {label} 50% channels removed"]
        assert row["mac_ratio"] > 3
        assert row["size_bytes"] == (out / row["file"]).stat().st_size
    # The QAT stage: a Keras-loadable QAT model and its int8 file, which
    # computes what the QAT model computes (same accuracy within two samples:
    # after 3 epochs many test digits are near-ties).
    assert (out / "digits_cnn_qat.keras").is_file()
    qat_row = by_name["TFLite int8 from QAT"]
    assert qat_row["size_bytes"] == (out / qat_row["file"]).stat().st_size
    # keras_accuracy is a float32 from evaluate: compare in samples.
    assert round(abs(qat_row["accuracy"] - qat_row["keras_accuracy"]) * 360) <= 2
    assert by_name["TFLM int8 bundle"]["arena_bytes"] > 0
    # The Deep Compression stage: a bundle with DECODE-compressed weights,
    # smaller than the plain int8 bundle, that TFLite Micro runs.
    deep = by_name["TFLM bundle, pruned 80% + 16 clusters + QAT, compressed"]
    assert deep["size_bytes"] == (out / deep["file"]).stat().st_size
    assert deep["size_bytes"] < 0.6 * by_name["TFLM int8 bundle"]["size_bytes"]
    report = json.loads((out / "micro_deep_compression" / "digits_report.json").read_text())
    assert report["compression"]["compressed_tensors"] >= 3
    assert 0 < deep["deep_compression_bits_per_weight"] < 2.5
    # The early-exit stage: a plot, a Keras model, one int8 file that exits
    # early by itself, within 2 points of Keras's accuracy and timed per
    # sample (exit by exit) in LiteRT.
    early = json.loads((out / "results.json").read_text())["early_exit"]
    assert (out / "early_exit.png").is_file()
    assert (out / "digits_cnn_early_exit.keras").is_file()
    assert early["files"] == ["early_exit_int8.tflite"]
    assert (out / "early_exit_int8.tflite").is_file()
    assert abs(early["litert_accuracy"] - early["keras_accuracy"]) <= 0.02
    assert early["latency_us"] > 0 and early["plain_int8_latency_us"] > 0
    assert len(early["latency_us_by_exit"]) == 3
    assert abs(sum(early["exit_fractions"]) - 1) < 1e-9
    assert len(early["sweep"]["rows"]) == 9
    # Sizes in the table are the sizes of the files written.
    assert by_name["TFLite int8"]["size_bytes"] == (out / "digits_int8.tflite").stat().st_size
    assert "TFLite float16" in result.stdout and "TFLite Micro" in result.stdout
    assert (out / "accuracy_vs_size.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
