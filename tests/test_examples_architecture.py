"""End-to-end runs of the architecture examples (factorization, early exits,
slimmable widths, distillation) at tiny settings.

Each script runs in a subprocess; its results.json must hold the numbers
measured again here from the files it wrote (LiteRT accuracy on the same
test subset, file sizes), and its printed table must show them.
"""

import os

import numpy as np
import pytest

from example_runner import first_test_samples
from example_runner import run_example as _run
from keras_compress.runtime import EarlyExitRunner, LiteRTModel


def _test_data(name, as_image=False):
    x, y = first_test_samples(name)
    if as_image and x.ndim == 3:
        x = x[:, :, None, :]
    return x, y


def _line(stdout, first_cell):
    lines = [line for line in stdout.splitlines() if line.split("  ")[0].strip() == first_cell]
    assert len(lines) == 1, (first_cell, stdout)
    return lines[0]


def _check_tflite_rows(stdout, out, rows, x, y, key="model"):
    """Each row's file: LiteRT accuracy and size as recorded and printed."""
    for row in rows:
        path = os.path.join(out, row["file"])
        logits = LiteRTModel(path).predict(x)
        assert row["accuracy"] == pytest.approx(float(np.mean(logits.argmax(-1) == y)), abs=1e-9)
        assert row["size_bytes"] == os.path.getsize(path)
        line = _line(stdout, format(row[key], "g") if key == "width" else row[key])
        assert f"{row['accuracy']:.1%}" in line
        assert f"{row['size_bytes']:,d}" in line
        assert f"{row['params']:,d}" in line


def _is_png(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_factorization_example(tmp_path):
    stdout, results = _run("factorization.py", tmp_path, "--finetune_epochs", "1")
    rows = results["rows"]
    assert [r["model"] for r in rows] == ["cnn", "cnn_separable", "mlp", "mlp_lowrank"]
    x, y = _test_data("digits", as_image=True)
    _check_tflite_rows(stdout, tmp_path, rows, x, y)
    by_name = {r["model"]: r for r in rows}
    # The conversions really save parameters and MACs (stem conv kept).
    assert by_name["cnn_separable"]["params"] < by_name["cnn"]["params"] / 4
    assert by_name["cnn_separable"]["macs"] < by_name["cnn"]["macs"] / 4
    assert by_name["mlp_lowrank"]["params"] < by_name["mlp"]["params"]
    assert results["reports"]["cnn_separable"]["params_after"] == by_name["cnn_separable"]["params"]
    assert results["reports"]["mlp_lowrank"]["params_after"] == by_name["mlp_lowrank"]["params"]
    assert "replaced" in stdout  # the factorization reports are printed
    for r in rows:
        assert r["latency_us"] > 0
        assert f"{r['latency_us']:.1f}" in _line(stdout, r["model"])


@pytest.mark.slow
def test_early_exit_example(tmp_path):
    stdout, results = _run("early_exit.py", tmp_path)
    x, y = _test_data("digits")
    cnn_row, chain_row = results["rows"]
    acc = LiteRTModel(os.path.join(tmp_path, cnn_row["file"])).evaluate(x, y)
    assert cnn_row["accuracy"] == pytest.approx(acc, abs=1e-9)
    assert f"{cnn_row['accuracy']:.1%}" in _line(stdout, "cnn")

    runner = EarlyExitRunner(os.path.join(tmp_path, chain_row["file"]))
    assert runner.thresholds[0] == pytest.approx(chain_row["threshold"])
    result = runner.predict(x)
    assert chain_row["accuracy"] == pytest.approx(result.accuracy(y), abs=1e-9)
    assert chain_row["mean_macs"] == pytest.approx(result.mean_macs)
    assert chain_row["exit_fractions"] == pytest.approx(result.exit_fractions(3))
    assert chain_row["mac_reduction"] == pytest.approx(cnn_row["mean_macs"] / result.mean_macs)
    line = _line(stdout, "early_exit_joint")
    for text in (f"{result.accuracy(y):.1%}", f"{result.mean_macs:,.0f}",
                 " / ".join(f"{f:.1%}" for f in result.exit_fractions(3))):
        assert text in line
    assert results["file_bytes"] == os.path.getsize(os.path.join(tmp_path, chain_row["file"]))
    for row in (cnn_row, chain_row):
        assert row["latency_us"] > 0
        assert f"{row['latency_us']:.1f}" in _line(stdout, row["model"])
    # The chosen threshold is one of the sweep's, printed in the sweep table.
    assert chain_row["threshold"] in [r["threshold"] for r in results["sweep"]["rows"]]
    assert "threshold sweep" in stdout
    assert _is_png(os.path.join(tmp_path, results["files"]["plot"]))


@pytest.mark.slow
def test_slimmable_example(tmp_path):
    stdout, results = _run("slimmable.py", tmp_path)  # MNIST-1D by default
    rows = results["rows"]
    assert [r["width"] for r in rows] == [0.25, 0.5, 0.75, 1.0]
    x, y = _test_data("mnist1d", as_image=True)
    _check_tflite_rows(stdout, tmp_path, rows, x, y, key="width")
    assert [r["channels"] for r in rows] == ["8-16-16", "16-32-32", "24-48-48", "32-64-64"]
    params = [r["params"] for r in rows]
    assert params == sorted(params) and params[0] * 5 < params[-1]
    assert _is_png(os.path.join(tmp_path, results["plot"]))


@pytest.mark.slow
def test_distillation_example(tmp_path):
    stdout, results = _run("distillation.py", tmp_path, "--teachers", "2",
                           "--teacher_epochs", "1")
    rows = results["rows"]
    names = [r["model"] for r in rows]
    assert names == ["teacher_0", "teacher_1", "ensemble of 2 teachers",
                     "student_alone", "student_distilled"]
    x, y = _test_data("digits")
    files = [r for r in rows if "file" in r]
    _check_tflite_rows(stdout, tmp_path, files, x, y)
    probs = []
    for r in rows[:2]:
        logits = LiteRTModel(os.path.join(tmp_path, r["file"])).predict(x)
        e = np.exp(logits - logits.max(-1, keepdims=True))
        probs.append(e / e.sum(-1, keepdims=True))
    ensemble = rows[2]
    assert ensemble["accuracy"] == pytest.approx(
        float(np.mean(np.mean(probs, axis=0).argmax(-1) == y)), abs=1e-9)
    assert f"{ensemble['accuracy']:.1%}" in _line(stdout, ensemble["model"])
    assert rows[3]["params"] == rows[4]["params"] < rows[0]["params"] / 10
    for r in rows:
        assert r["errors"] == round((1 - r["accuracy"]) * 100)
