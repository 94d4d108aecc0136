"""benchmarks/lottery_ticket.py runs (--quick) and reports what it wrote."""

import pytest

from bench_runner import run_benchmark


@pytest.mark.slow
def test_lottery_ticket_quick(tmp_path, capsys):
    stdout, report = run_benchmark(capsys, "lottery_ticket", tmp_path / "lottery_ticket.json")
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
    assert "PASS" in stdout or "FAIL" in stdout
    assert "Wrote" in stdout
