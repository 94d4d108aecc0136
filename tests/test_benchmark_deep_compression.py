"""benchmarks/deep_compression.py runs (--quick, digits) and reports what it
measured: sizes of real artifacts, ratios computed from them."""

import pytest

from bench_runner import needs_peers, run_benchmark_subprocess


# A process of its own: importing tfmot sets TF_USE_LEGACY_KERAS=1, which
# would make `tf.keras` tf_keras for every test after this one.
@pytest.mark.slow
@needs_peers
def test_deep_compression_quick(tmp_path):
    stdout, report = run_benchmark_subprocess(
        "deep_compression", tmp_path / "deep_compression.json", "--tasks", "digits")
    assert list(report["sections"]) == ["pipeline", "binary"]
    net = report["sections"]["pipeline"]["nets"]["digits/mlp"]
    (run,) = net["runs"]
    ours, tfmot = run["ours"]["0.9"], run["tfmot"]
    # The QAT int8 file keeps the 90% zeros and at most 16 clusters.
    rows = {r["stage"]: r for r in ours["deep_compression"]}
    assert rows["int8"]["nonzeros"] <= 0.1 * rows["int8"]["params"] + 1
    assert rows["int8"]["clusters"] <= 16
    # Ours compresses in TFLM, tfmot's bundle is its int8 file.
    assert ours["micro"]["flash_bytes"] < 0.4 * tfmot["micro"]["flash_bytes"]
    assert tfmot["litert"]["artifact"] in ("dynamic", "int8")
    m = net["medians"]
    assert m["ours"]["0.9"]["micro_flash_bytes"] == ours["micro"]["flash_bytes"]
    targets = report["sections"]["pipeline"]["targets"]
    micro = next(t for t in targets if t["target"].startswith("micro"))
    assert micro["ratio"] == pytest.approx(
        tfmot["micro"]["flash_bytes"] / ours["micro"]["flash_bytes"])
    binary = report["sections"]["binary"]["digits"]
    (b,) = binary["runs"]
    assert b["no_bias_micro_flash_bytes"] < b["no_bias_micro_flash_bytes_uncompressed"] / 5
    assert binary["ratio"] == pytest.approx(b["float32_bytes"] / b["no_bias_micro_flash_bytes"])
    assert "Targets:" in stdout
