"""benchmarks/binary_ops.py runs (--quick) and reports what it wrote."""

import pytest

from bench_runner import run_benchmark

ARMS = ["int8", "int8 + sign", "packed, int8 input", "packed, XNOR"]


@pytest.mark.slow
def test_binary_ops_quick(tmp_path, capsys):
    from keras_compress import custom_ops

    try:
        custom_ops.build("litert")
        custom_ops.micro_registerers()
    except custom_ops.BuildError as e:
        pytest.skip(f"the packed operators cannot run here: {e}")
    stdout, report = run_benchmark(capsys, "binary_ops", tmp_path / "binary_ops.json")
    assert report["settings"]["quick"] is True
    assert list(report["files"]) == ["mlp"]  # the CNN: same code, CI time
    for kind in ("mlp",):
        s = report["files"][kind]["summary"]
        # Bits for every weight of the packed layers: 32x smaller than float32.
        assert s["packed_weights_vs_float32"] == pytest.approx(32.0)
        assert s["packed_bytes"] < s["builtin_bytes"] < s["float32_bytes"]
        # The packed file computes what the builtin int8 file computes.
        assert s["packed_litert_accuracy"] == s["builtin_accuracy"]
        assert s["packed_tflm_accuracy"] == s["builtin_tflm_accuracy"]
    for shape in ("fc_1024", "conv_3x3_64"):
        arms = report["latency"][shape]
        assert list(arms) == ARMS
        for arm in arms.values():
            assert arm["litert_ms"] > 0 and arm["tflm_ms"] > 0
        assert arms["int8"]["litert_speedup_vs_int8"] == 1.0
        assert arms["packed, XNOR"]["file_bytes"] < arms["int8"]["file_bytes"] / 4
    assert set(report["targets"]) == {"weights_vs_float32", "mlp_file_vs_float32",
                                      "fc_speedup_litert", "fc_speedup_tflm"}
    assert "| packed, XNOR" in stdout and "Wrote" in stdout
