"""benchmarks/quantization.py runs (--quick, digits) and reports what it wrote."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATHS = ["float32", "ptq_converter", "ptq_minmax", "ptq_percentile", "ptq_kl",
         "qat", "qat_bn_frozen"]
VARIANTS = ["float", "dorefa4", "dorefa2", "ternary", "binary"]


@pytest.mark.slow
def test_quantization_quick(tmp_path):
    out = tmp_path / "quantization.json"
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "quantization.py"),
         "--quick", "--tasks", "digits", "--output", str(out)],
        capture_output=True, text=True, timeout=900,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["command"].startswith("python benchmarks/quantization.py")
    assert report["settings"]["quick"] is True
    assert set(report["tasks"]) == {"digits"}  # MNIST-1D: same code, CI time
    for task in report["tasks"].values():
        summary = task["int8"]["summary"]
        assert list(summary)[2:2 + len(PATHS)] == PATHS
        (seed,) = task["int8"]["seeds"]
        float_bytes = seed["paths"]["float32"]["size_bytes"]
        for key in PATHS:
            row = seed["paths"][key]
            assert 0.0 <= row["litert_test_acc"] <= 1.0
            if key != "float32":
                # int8 weights: well under half the float file.
                assert row["size_bytes"] < 0.5 * float_bytes, key
            if "agreement" in row:
                # Keras (simulated) and LiteRT take the same class almost
                # always, even for a barely trained model.
                assert row["agreement"] >= 0.95, (key, row["agreement"])
        assert seed["paths"]["float32"]["agreement"] == 1.0
        assert seed["timing"]["qat_s_per_epoch"] > 0
        assert seed["timing"]["float_s_per_epoch"] > 0
        lowbit = task["lowbit"]["summary"]
        assert set(lowbit) == {"mlp", "cnn"}
        for model in lowbit.values():
            assert list(model) == VARIANTS
            assert all(0.0 <= e["median"] <= 1.0 for e in model.values())
    assert "| path |" in result.stdout
    assert "| weights (middle layers) |" in result.stdout
    assert "Wrote" in result.stdout
