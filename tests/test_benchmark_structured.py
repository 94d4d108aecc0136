"""benchmarks/structured_latency.py runs (--quick) and reports what it wrote."""

import pytest

from bench_runner import run_benchmark


@pytest.mark.slow
def test_structured_latency_quick(tmp_path, capsys):
    stdout, report = run_benchmark(capsys, "structured_latency",
                                   tmp_path / "structured_latency.json")
    assert report["command"].startswith("python benchmarks/structured_latency.py")
    assert report["settings"]["quick"] is True
    assert set(report["models"]) == {"mobilenet_style", "resnet_style"}
    for model in report["models"].values():
        rows = {row["variant"]: row for row in model["rows"]}
        assert list(rows) == ["dense", "pruned_50"]
        dense, pruned = rows["dense"], rows["pruned_50"]
        assert dense["mac_ratio"] == pytest.approx(1.0)
        assert pruned["mac_ratio"] > 1.0 and pruned["tflite_mac_ratio"] > 1.0
        assert pruned["params"] < dense["params"]
        assert pruned["mac_ratio"] == pytest.approx(pruned["report_mac_ratio"])
        for fmt in ("float32", "int8"):
            cell = pruned["latency"][f"{fmt}_1t"]
            assert cell["median_ms"] > 0
            assert cell["latency_ratio"] == pytest.approx(
                dense["latency"][f"{fmt}_1t"]["median_ms"] / cell["median_ms"])
            assert cell["mac_over_latency_ratio"] == pytest.approx(
                pruned["mac_ratio"] / cell["latency_ratio"])
            assert cell["target_pass"] == (cell["mac_over_latency_ratio"] <= 1.2)
            assert cell["xnnpack_ops"] <= cell["total_ops"]
    assert "Wrote" in stdout
