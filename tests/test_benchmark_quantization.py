"""benchmarks/quantization.py runs (--quick, digits) and reports what it wrote."""

import pytest

from bench_runner import run_benchmark

PATHS = ["float32", "ptq_converter", "ptq_minmax", "ptq_percentile", "ptq_kl",
         "qat", "qat_bn_frozen"]
VARIANTS = ["float", "dorefa4", "dorefa2", "ternary", "binary"]


@pytest.mark.slow
def test_quantization_quick(tmp_path, capsys):
    stdout, report = run_benchmark(capsys, "quantization", tmp_path / "quantization.json",
                                   "--tasks", "digits")
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
    assert "| path " in stdout
    assert "| weights (middle layers) |" in stdout
    assert "Wrote" in stdout
