"""The benchmark scripts run (with tiny settings) and report what they wrote."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_export_formats_quick(tmp_path):
    out = tmp_path / "export_formats.json"
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "export_formats.py"),
         "--quick", "--output", str(out)],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    for key in ("demo_cnn", "mobilenet_style"):
        rows = {r["format"]: r for r in report["models"][key]["rows"]}
        assert list(rows) == ["float32", "float16", "dynamic", "int8"]
        base = rows["float32"]["size_bytes"]
        for row in rows.values():
            assert row["size_ratio_vs_float32"] == pytest.approx(base / row["size_bytes"])
            assert row["median_ms"] > 0 and row["xnnpack_ops"] <= row["total_ops"]
        assert rows["int8"]["size_ratio_vs_float32"] > 2.5
        assert rows["float16"]["size_ratio_vs_float32"] > 1.8
    assert "Wrote" in result.stdout
