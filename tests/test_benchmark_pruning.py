"""benchmarks/pruning_vs_tfmot.py runs (with --quick) and reports every arm."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = ("tensorflow_model_optimization", "tf_keras")
MISSING = [name for name in PEERS if importlib.util.find_spec(name) is None]


@pytest.mark.slow
@pytest.mark.skipif(
    bool(MISSING),
    reason=f"the pruning benchmark needs {', '.join(MISSING)} (the `bench` "
    "extra: pip install tensorflow-model-optimization tf_keras)",
)
def test_pruning_vs_tfmot_quick(tmp_path):
    out = tmp_path / "pruning_vs_tfmot.json"
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "pruning_vs_tfmot.py"),
         "--quick", "--output", str(out)],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["settings"]["quick"] is True
    sparsities = report["settings"]["sparsities"]
    assert sorted(report["tasks"]) == ["digits", "mnist1d"]
    for task in report["tasks"].values():
        for arm in (task["dense"], task["dense_tf_keras"]):
            assert arm["sparsity"] == 0.0
            assert arm["train_s"] > 0 and 0.0 <= arm["accuracy"] <= 1.0
        assert [row["target_sparsity"] for row in task["rows"]] == sparsities
        for row in task["rows"]:
            target = row["target_sparsity"]
            for name in ("ours", "tfmot"):
                arm = row[name]
                assert arm["train_s"] > 0 and 0.0 <= arm["accuracy"] <= 1.0
                assert 0 < arm["tflite_bytes"] < task["dense"]["tflite_bytes"]
                assert 0 < arm["gzip_bytes"] < arm["tflite_bytes"]
                # Every pruned layer within one weight of its target.
                for layer in arm["layers_first_repeat"]:
                    assert abs(layer["zeros"] - target * layer["size"]) <= 1, (name, layer)
                assert arm["max_layer_zeros_off_target"] <= 1
            assert set(row["ratios"]) >= {
                "ours_time_vs_dense", "tfmot_time_vs_dense",
                "ours_minus_tfmot_accuracy_points", "ours_minus_dense_accuracy_points",
            }
    assert report["targets"] and all(isinstance(t["pass"], bool) for t in report["targets"])
    assert "| arm" in result.stdout and "Wrote" in result.stdout
