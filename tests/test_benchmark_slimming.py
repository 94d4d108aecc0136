"""benchmarks/slimming.py runs (--quick) and reports what it wrote."""

import pytest

from bench_runner import run_benchmark

VARIANTS = ["baseline", "slimmed", "pruned", "finetuned", "scratch", "uniform"]


@pytest.mark.slow
def test_slimming_quick(tmp_path, capsys):
    stdout, report = run_benchmark(capsys, "slimming", tmp_path / "slimming.json")
    assert report["command"].startswith("python benchmarks/slimming.py")
    assert report["settings"]["quick"] is True
    assert set(report["tasks"]) == {"mnist1d", "digits"}
    for task in report["tasks"].values():
        summary = task["summary"]
        assert list(summary["test_acc"]) == VARIANTS
        for entry in summary["test_acc"].values():
            assert 0.0 <= entry["median"] <= 1.0
        (seed,) = task["seeds"]
        assert seed["params_after"] < seed["params_before"]
        assert seed["macs_after"] < seed["macs_before"]
        assert [seed["params_before"], seed["params_after"]] == seed["report_params"]
        assert [seed["macs_before"], seed["macs_after"]] == seed["report_macs"]
        removed = 1 - seed["channels_after"] / seed["channels_before"]
        # min_channels can give a few channels back, never take more.
        assert task["settings"]["ratio"] - 0.1 < removed <= task["settings"]["ratio"] + 1e-9
        assert all(w <= f for w, f in zip(seed["widths_after"], seed["widths_before"]))
        assert min(seed["widths_after"]) >= report["settings"]["min_channels"]
        assert seed["uniform"]["macs"] < seed["macs_before"]
        assert 0.0 < seed["uniform"]["factor"] < 1.0
        assert seed["sweep_slimmed"] and seed["sweep_baseline"]
    assert "| variant " in stdout
    assert "Wrote" in stdout
