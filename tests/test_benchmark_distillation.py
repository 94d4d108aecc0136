"""benchmarks/distillation.py runs (--quick, digits) and reports what it wrote."""

import pytest

from bench_runner import run_benchmark

VARIANTS = ["alone", "distilled_1", "distilled_3", "hints_1"]


@pytest.mark.slow
def test_distillation_quick(tmp_path, capsys):
    stdout, report = run_benchmark(capsys, "distillation", tmp_path / "distillation.json",
                                   "--tasks", "digits")
    assert report["command"].startswith("python benchmarks/distillation.py")
    assert report["settings"]["quick"] is True
    assert list(report["sections"]) == ["distillation", "architecture"]

    kd = report["sections"]["distillation"]["tasks"]["digits"]
    assert list(kd["summary"]["test_acc"]) == VARIANTS
    (seed,) = kd["seeds"]
    assert seed["student_params"] < seed["teacher_params"] / 4
    for variant in VARIANTS:
        acc = kd["summary"]["test_acc"][variant]["median"]
        errors = kd["summary"]["test_errors"][variant]["median"]
        assert errors == round((1 - acc) * kd["test_samples"])

    arch = report["sections"]["architecture"]
    dense = arch["low_rank_mlp"]["digits"]["dense"]
    for row in arch["low_rank_mlp"]["digits"]["rows"]:
        assert row["params"]["median"] < dense["params"]
        assert row["param_ratio"]["median"] == pytest.approx(
            dense["params"] / row["params"]["median"])
    rows = arch["separable_cnn"]["digits"]["rows"]
    standard = rows["standard"]
    for key in ("separable", "converted", "converted_finetuned"):
        # Exact formulas: 3x3 convs become depthwise + pointwise.
        assert rows[key]["params"] < standard["params"] / 5
        assert rows[key]["macs"] < standard["macs"] / 5
        assert rows[key]["latency_ms"]["median"] > 0
    assert "Wrote" in stdout
