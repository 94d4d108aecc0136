"""benchmarks/lottery_ticket.py runs (--quick) and reports what it wrote."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.slow
def test_lottery_ticket_quick(tmp_path):
    out = tmp_path / "lottery_ticket.json"
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "lottery_ticket.py"),
         "--quick", "--output", str(out)],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["command"].startswith("python benchmarks/lottery_ticket.py")
    rows = {row["variant"]: row for row in report["rows"]}
    assert list(rows) == ["dense", "ticket_r3", "ticket_r7", "ticket_r11",
                          "random_r3", "random_r7", "random_r11"]
    for row in rows.values():
        assert 0.0 <= row["median_test_acc"] <= 1.0
        assert 0 < row["median_early_stop_step"] <= report["settings"]["steps_per_run"]
        assert row["leaked_weights"] == 0
    assert rows["dense"]["remaining"] == 1.0
    (seed,) = report["seeds"]
    for r in (3, 7, 11):
        stats = seed["masks"][str(r)]
        assert rows[f"ticket_r{r}"]["remaining"] == pytest.approx(0.8 ** r, abs=1e-3)
        assert set(stats["per_layer_kept"]) == {"fc1/kernel", "fc2/kernel", "out/kernel"}
        for key, kept in stats["per_layer_kept"].items():
            # Within one weight of 0.8**r of every layer.
            assert abs(kept - 0.8 ** r * stats["per_layer_size"][key]) <= 1.0
        assert stats["callback_logged_sparsity"] == pytest.approx(
            1 - stats["remaining"], abs=1e-6)
    assert seed["masks_nested"]
    assert len(report["claims"]) == 10
    assert all(c["detail"] for c in report["claims"])
    assert "PASS" in result.stdout or "FAIL" in result.stdout
    assert "Wrote" in result.stdout
