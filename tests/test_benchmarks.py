"""The benchmark scripts run (with tiny settings) and report what they wrote."""

import pytest

from bench_runner import run_benchmark


@pytest.mark.slow
def test_export_formats_quick(tmp_path, capsys):
    stdout, report = run_benchmark(capsys, "export_formats", tmp_path / "export_formats.json")
    for key in ("demo_cnn", "mobilenet_style"):
        rows = {r["format"]: r for r in report["models"][key]["rows"]}
        assert list(rows) == ["float32", "float16", "dynamic", "int8"]
        base = rows["float32"]["size_bytes"]
        for row in rows.values():
            assert row["size_ratio_vs_float32"] == pytest.approx(base / row["size_bytes"])
            assert row["median_ms"] > 0 and row["xnnpack_ops"] <= row["total_ops"]
        assert rows["int8"]["size_ratio_vs_float32"] > 2.5
        assert rows["float16"]["size_ratio_vs_float32"] > 1.8
    assert "Wrote" in stdout
