"""benchmarks/dynamic.py runs (--quick, digits) and reports what it wrote."""

import pytest

from bench_runner import run_benchmark

WIDTHS = ["0.25", "0.5", "0.75", "1.0"]


@pytest.mark.slow
def test_dynamic_quick(tmp_path, capsys):
    stdout, report = run_benchmark(capsys, "dynamic", tmp_path / "dynamic.json",
                                   "--tasks", "digits", "--sections", "early_exit",
                                   "slimmable")
    assert report["command"].startswith("python benchmarks/dynamic.py")
    assert report["settings"]["quick"] is True
    assert list(report["sections"]) == ["early_exit", "slimmable"]

    early = report["sections"]["early_exit"]["tasks"]["digits"]["summary"]
    joint = early["joint"]
    # Staged MACs grow exit by exit and the last includes the backbone.
    macs = joint["exit_macs"]["median"]
    assert macs == sorted(macs) and macs[-1] > early["baseline_macs"]["median"]
    # The LiteRT chain takes Keras's exit on every test sample.
    assert joint["litert_same_exit"]["median"] == 1.0
    sweep = joint["sweep"]
    reductions = [row["mac_reduction"]["median"] for row in sweep]
    assert reductions == sorted(reductions, reverse=True)  # higher threshold, more MACs
    for row in sweep:
        assert abs(sum(row["exit_fractions"]["median"]) - 1) < 1e-6

    slim = report["sections"]["slimmable"]["tasks"]["digits"]["summary"]
    assert [w for w in WIDTHS if w in slim] == WIDTHS
    params = [slim[w]["params"] for w in WIDTHS]
    assert params == sorted(params) and len(set(params)) == 4
    for w in WIDTHS:
        # The exported plain model computes what the slimmable one does.
        assert slim[w]["export_max_abs_diff"]["median"] < 1e-5
    assert "Wrote" in stdout


@pytest.mark.slow
def test_dynamic_device_quick(tmp_path, capsys):
    """The early-exit sections on the device (a test of their own, so
    pytest-xdist runs it beside the other)."""
    stdout, report = run_benchmark(capsys, "dynamic", tmp_path / "dynamic.json",
                                   "--tasks", "digits", "--sections",
                                   "early_exit_latency", "early_exit_heads")
    assert list(report["sections"]) == ["early_exit_latency", "early_exit_heads"]
    latency = report["sections"]["early_exit_latency"]["tasks"]["digits"]
    assert sorted(latency["summary"]) == sorted(
        ["threshold", "float32_litert", "float32_micro", "int8_litert", "int8_micro"])
    seed = latency["seeds"][0]
    for fmt in ("float32", "int8"):
        entry = seed["formats"][fmt]
        for runtime in ("litert", "micro"):
            row = entry[runtime]
            assert all(row["latency_us"][k] > 0 for k in ("plain", "chain", "single"))
            assert abs(sum(row["exit_fractions"]) - 1) < 1e-6
            assert row["timed_samples"] == 30
    # int8 files are smaller than float32 ones.
    assert seed["formats"]["int8"]["single_bytes"] < seed["formats"]["float32"]["single_bytes"]
    heads = report["sections"]["early_exit_heads"]
    summary = heads["tasks"]["digits"]["summary"]
    assert sorted(summary) == ["gap", "grid2", "grid4"]
    for row in summary.values():
        assert len(row["accuracy"]) == 2 and all(0 <= a <= 1 for a in row["accuracy"])
    # Pooling to cells feeds the classifier more features: more MACs.
    assert summary["grid4"]["macs"][0] > summary["grid2"]["macs"][0] > summary["gap"]["macs"][0]
    assert heads["choice"]["head"] in summary
    assert "Wrote" in stdout
