"""The pruning examples run, and their numbers come from the files they write."""

import os

import numpy as np
import pytest

from example_runner import first_test_samples as subset
from example_runner import run_example as run
from keras_compress import analysis
from keras_compress.runtime import LiteRTModel


def check_file(out, row, x, y, kernels="xnnpack"):
    """Size and LiteRT accuracy of `row["file"]` are what the row says."""
    path = out / row["file"]
    assert row["bytes"] == os.path.getsize(path)
    predictions = LiteRTModel(str(path), kernels=kernels).predict(x)
    assert row["accuracy"] == pytest.approx(float((predictions.argmax(-1) == y).mean()))
    return str(path)


@pytest.mark.slow
def test_magnitude_pruning(tmp_path):
    stdout, results = run("magnitude_pruning.py", tmp_path, "--prune_epochs", "1")
    x, y = subset("digits")
    rows = {row["file"]: row for row in results["rows"]}
    assert list(rows) == ["dense.tflite", "dense_int8.tflite", "pruned.tflite",
                          "pruned_sparse.tflite", "pruned_int8.tflite",
                          "pruned_int8_sparse.tflite"]
    for name, row in rows.items():
        kernels = "builtin" if name == "pruned_int8_sparse.tflite" else "xnnpack"
        path = check_file(tmp_path, row, x, y, kernels)
        stored = analysis.summarize(path).totals
        assert row["sparsity"] == pytest.approx(stored.sparsity)
        if name.startswith("pruned"):
            # Biases are not pruned: a little under the 90% of the kernels.
            assert 0.85 < row["sparsity"] < 0.9
        else:
            assert row["sparsity"] < 0.05
        assert f"{row['bytes']:,}" in stdout and f"{row['accuracy']:.2%}" in stdout
    # The sparse format makes the pruned files smaller; plain ones are not.
    assert rows["pruned.tflite"]["bytes"] == rows["dense.tflite"]["bytes"]
    assert rows["pruned_sparse.tflite"]["bytes"] < 0.5 * rows["pruned.tflite"]["bytes"]
    int8 = rows["pruned_int8.tflite"]["bytes"]
    assert rows["pruned_int8_sparse.tflite"]["bytes"] < int8


@pytest.mark.slow
def test_lottery_ticket(tmp_path):
    stdout, results = run("lottery_ticket.py", tmp_path,
                          "--rounds", "2", "--round_epochs", "1")
    assert (tmp_path / results["plot"]).stat().st_size > 0
    masks = np.load(tmp_path / results["masks"])
    assert sorted(masks.files) == sorted(
        f"round{r}/{layer}/kernel" for r in (1, 2) for layer in ("fc1", "fc2", "out"))
    rows = results["rows"]
    assert [row["round"] for row in rows] == [0, 1, 2]
    for row in rows:
        r = row["round"]
        if r:
            kept = [masks[f"round{r}/{name}/kernel"] for name in ("fc1", "fc2", "out")]
            assert row["weights_left"] == pytest.approx(
                sum(int(m.sum()) for m in kept) / sum(m.size for m in kept))
        assert row["weights_left"] == pytest.approx(0.8 ** r, abs=0.005)
        assert f"{row['weights_left']:.1%}" in stdout
        assert f"{row['ticket']:.1%}" in stdout and f"{row['random']:.1%}" in stdout
    # Masks are nested: a weight pruned in round 1 stays pruned.
    assert not np.any(masks["round2/fc1/kernel"] & ~masks["round1/fc1/kernel"])
    exported = results["exported_ticket"]
    x, y = subset("mnist1d")
    check_file(tmp_path, exported, x, y)
    assert f"{exported['bytes']:,} bytes" in stdout


@pytest.mark.slow
def test_channel_pruning(tmp_path):
    stdout, results = run("channel_pruning.py", tmp_path,
                          "--ratios", "0.5", "--finetune_epochs", "1")
    x, y = subset("digits")
    original, pruned = results["rows"]
    assert (original["widths"], pruned["widths"]) == ("32-64-128", "16-32-64")
    assert pruned["params"] < original["params"] / 3
    assert pruned["macs"] < original["macs"] / 3
    assert pruned["bytes"] < original["bytes"] / 3
    for row in (original, pruned):
        check_file(tmp_path, row, x, y)
        assert row["latency_us"] > 0
        speedup = original["latency_us"] / row["latency_us"]
        assert row["speedup"] == pytest.approx(speedup)
        for text in (f"{row['macs']:,}", f"{row['bytes']:,}", f"{row['accuracy']:.2%}",
                     f"{row['latency_us']:.1f}"):
            assert text in stdout


@pytest.mark.slow
def test_network_slimming(tmp_path):
    stdout, results = run("network_slimming.py", tmp_path, "--finetune_epochs", "1")
    x, y = subset("mnist1d")
    assert (tmp_path / results["plot"]).stat().st_size > 0
    rows = {row["model"]: row for row in results["rows"]}
    assert list(rows) == ["baseline", "slimmed", "pruned", "finetuned"]
    report = results["report"]
    assert rows["pruned"]["macs"] == report["macs_after"] < report["macs_before"]
    assert rows["slimmed"]["macs"] == report["macs_before"] == rows["baseline"]["macs"]
    assert rows["finetuned"]["widths"] == rows["pruned"]["widths"]
    assert rows["pruned"]["widths"] != rows["slimmed"]["widths"]
    for row in rows.values():
        check_file(tmp_path, row, x, y)
        for text in (f"{row['macs']:,}", f"{row['bytes']:,}", f"{row['accuracy']:.2%}"):
            assert text in stdout
    assert rows["pruned"]["bytes"] < rows["slimmed"]["bytes"]
