"""benchmarks/deep_compression.py runs (--quick, digits) and reports what it
measured: sizes of real artifacts, ratios computed from them."""

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
    reason=f"the Deep Compression benchmark needs {', '.join(MISSING)} (the "
    "`bench` extra: pip install tensorflow-model-optimization tf_keras)",
)
def test_deep_compression_quick(tmp_path):
    out = tmp_path / "deep_compression.json"
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "deep_compression.py"),
         "--quick", "--tasks", "digits", "--output", str(out)],
        capture_output=True, text=True, timeout=900,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
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
    assert "Targets:" in result.stdout
