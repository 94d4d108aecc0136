"""benchmarks/pruning_vs_tfmot.py runs (with --quick) and reports every arm."""

import pytest

from bench_runner import needs_peers, run_benchmark_subprocess


# A process of its own: importing tfmot sets TF_USE_LEGACY_KERAS=1, which
# would make `tf.keras` tf_keras for every test after this one.
@pytest.mark.slow
@needs_peers
def test_pruning_vs_tfmot_quick(tmp_path):
    stdout, report = run_benchmark_subprocess(
        "pruning_vs_tfmot", tmp_path / "pruning_vs_tfmot.json")
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
    assert "| arm" in stdout and "Wrote" in stdout
