"""Report figures on hand-made results whose answers are worked out in the comments."""

import pytest

from lightning_hybrid.harness.report import band, cells_by_workload, count_spikes, markdown, summarize


def _result(method, lr, seed, curve, status="ok", step_s=0.01):
    r = {
        "workload": "w",
        "method": method,
        "lr": lr,
        "seed": seed,
        "status": status,
        "val": curve,
        "median_step_s": step_s,
    }
    if status == "ok":
        r["final_val_loss"] = curve[-1][1]
    else:
        r["reason"] = "NonFiniteLossError: non-finite training loss (nan) at step 7"
    return r


RESULTS = [
    # reference: best at lr 1e-2 (final mean 2.0), worse at 1e-3 (mean 3.0)
    _result("ref", 1e-2, 0, [(10, 3.0), (20, 2.5), (30, 2.1)]),
    _result("ref", 1e-2, 1, [(10, 3.0), (20, 2.5), (30, 1.9)]),
    _result("ref", 1e-3, 0, [(10, 4.0), (20, 3.5), (30, 3.0)]),
    _result("ref", 1e-3, 1, [(10, 4.0), (20, 3.5), (30, 3.0)]),
    # fast: seed-mean 2.0 at step 20 -> 20 steps vs the reference's 30 -> 0.67x; twice as slow a step
    _result("fast", 1e-2, 0, [(10, 2.6), (20, 2.1), (30, 1.7)], step_s=0.02),
    _result("fast", 1e-2, 1, [(10, 2.4), (20, 1.9), (30, 1.7)], step_s=0.02),
    # fast diverged once at 1e-1: that LR counts as failed, so its worst case is "failed"
    _result("fast", 1e-1, 0, [(10, 2.0)], status="failed", step_s=0.02),
    _result("fast", 1e-1, 1, [(10, 2.0), (20, 1.5), (30, 1.4)], step_s=0.02),
]


def test_band_keeps_steps_common_to_all_curves():
    steps, mean, low, high = band([[(10, 1.0), (20, 2.0)], [(10, 3.0)]])
    assert (steps, mean, low, high) == ([10], [2.0], [1.0], [3.0])


def test_target_steps_time_ratio_and_worst_case():
    target, summaries = summarize(cells_by_workload(RESULTS)["w"], reference="ref")
    assert target == pytest.approx(2.0)
    by = {s.method: s for s in summaries}
    assert by["ref"].best.lr == 1e-2 and by["ref"].steps_to_target == 30 and by["ref"].worst_mean == pytest.approx(3.0)
    assert by["fast"].best.lr == 1e-2  # 1e-1 had a failure, so it cannot be the best
    assert by["fast"].steps_to_target == 20
    assert by["fast"].step_time_ratio == pytest.approx(2.0)
    assert by["fast"].worst_mean == float("inf") and by["fast"].failures == 1


def test_markdown_shows_ratios_and_failures():
    text = markdown(RESULTS, reference="ref")
    assert "Target val loss: 2.000 (ref at its best base LR)." in text
    assert "| fast | 0.01 | 1.700 ± 0.000 | failed | 20 (0.67x) | 2.00x | 1 |" in text
    assert "| ref | 0.01 | 2.000 ± 0.141 | 3.000 | 30 (1.00x) | 1.00x | 0 |" in text
    assert (
        "| fast | 0.1 | 1 | 1.400 ± 0.000 | 0 | seed 0: NonFiniteLossError: non-finite training loss (nan) at step 7 |"
        in text
    )


def test_count_spikes_counts_rises_above_the_recent_median():
    # Oracle: a hand-made curve; the median of the 10 points before indices 12 and 14 is 2.005.
    losses = [2.0 + 0.01 * (i % 2) for i in range(12)] + [2.29, 2.0, 2.31, 2.0]
    assert count_spikes(losses) == 1  # 2.31 > 1.15 * 2.005 = 2.306; 2.29 is not
    assert count_spikes(losses, rise=0.1) == 2
    assert count_spikes(losses[:10]) == 0  # nothing before the first full window
