"""`benchmarks/backends.py --quick` runs every backend and both worker
counts, and reports consistent figures."""

import pytest

from bench_runner import run_benchmark


@pytest.mark.slow
def test_backends_quick(tmp_path, capsys):
    stdout, report = run_benchmark(capsys, "backends", tmp_path / "backends.json")
    assert set(report["step_time"]) == {"tensorflow", "jax", "torch"}
    for arms in report["step_time"].values():
        assert set(arms) == {"dense", "pruned", "qat"}
        assert arms["dense"]["ratio_to_dense"] == 1.0
        for arm in arms.values():
            assert arm["median_ms"] > 0 and len(arm["runs_ms"]) == 1
    workers = report["workers"]
    assert workers["ratio_2_to_1"] == pytest.approx(
        workers["2_workers"]["samples_per_s"] / workers["1_workers"]["samples_per_s"])
    assert "2 processes / 1" in stdout and "Wrote" in stdout
