"""Cross-workload figures on hand-made results whose answers are worked out in the comments."""

import pytest

from lightning_hybrid.harness.suite import cost_markdown, markdown, profile, standings


def _result(workload, method, lr, final, reach_at=None, seed=0, **extra):
    """One finished run whose val curve is 2 * final at step 10 and `final` at step 20 (or at
    `reach_at`, when given, it is already at `final`)."""
    curve = [(10, final if reach_at == 10 else 2 * final), (20, final)]
    return {
        "workload": workload,
        "method": method,
        "lr": lr,
        "seed": seed,
        "status": "ok",
        "final_val_loss": final,
        "val": curve,
        **extra,
    }


RESULTS = [
    # workload a: the reference is best at lr 1e-2 (2.0); "free" (one LR) ends at 2.2 -> ratio 1.1;
    # "swept" is 1.9 at 1e-2 (0.95) and 3.0 at 1e-3 (1.5), and reaches 2.0 by step 10 (0.5x the steps)
    _result("a", "ref", 1e-2, 2.0),
    _result("a", "ref", 1e-3, 4.0),
    _result("a", "free", 1.0, 2.2),
    _result("a", "swept", 1e-2, 1.9, reach_at=10),
    _result("a", "swept", 1e-3, 3.0),
    # workload b: the reference ends at 1.0; free at 1.0 (1.0); swept at 1.2 (1.2) and 1.3 (1.3)
    _result("b", "ref", 1e-2, 1.0),
    _result("b", "free", 1.0, 1.0),
    _result("b", "swept", 1e-2, 1.2),
    _result("b", "swept", 1e-3, 1.3),
]


def test_standings_are_ratios_to_the_tuned_reference():
    rows = {(s.workload, s.method): s for s in standings(RESULTS, "ref")}
    assert rows[("a", "free")].best_ratio == rows[("a", "free")].worst_ratio == pytest.approx(1.1)
    assert (rows[("a", "swept")].best_ratio, rows[("a", "swept")].worst_ratio) == pytest.approx((0.95, 1.5))
    assert rows[("a", "swept")].steps_ratio == pytest.approx(0.5)
    assert rows[("b", "swept")].steps_ratio is None  # 1.2 never reaches 1.0
    assert rows[("a", "ref")].best_ratio == 1.0 and rows[("a", "ref")].worst_ratio == pytest.approx(2.0)


def test_performance_profile_counts_workloads_within_tau_of_the_best():
    rows = standings(RESULTS, "ref")
    # best per workload: a 0.95 (swept), b 1.0 (ref and free)
    best = profile(rows, [1.0, 1.1, 1.2, 1.3])
    # free: a 1.1 <= tau * 0.95 from tau 1.158 -> counted at 1.2; b within at every tau
    assert best["free"] == [0.5, 0.5, 1.0, 1.0]
    # swept: a at every tau; b 1.2 <= tau at 1.2
    assert best["swept"] == [0.5, 0.5, 1.0, 1.0]
    assert best["ref"] == [0.5, 1.0, 1.0, 1.0]  # a: 1.0 <= 1.1 * 0.95 = 1.045
    worst = profile(rows, [1.0, 1.3, 1.6], worst=True)
    assert worst["swept"] == [0.0, 0.5, 1.0]  # a 1.5 <= 1.6 * 0.95 = 1.52; b 1.3 within at 1.3


def test_markdown_gives_each_methods_guarantee():
    text = markdown(RESULTS, "ref")
    assert "| free | 1.100 | 1.000 | 1.100 | 1.100 |" in text
    assert "| swept | 0.950 / 1.500 | 1.200 / 1.300 | 1.200 | 1.500 |" in text
    assert "| swept | 0.500 | not reached |" in text
    assert text.index("| ref |") < text.index("| free |")  # the reference first


def test_cost_compares_step_time_and_state_bytes_with_the_reference():
    results = [
        _result("a", "ref", 1e-3, 2.0, median_step_s=0.010, optimizer_state_bytes=800, callback_state_bytes=0),
        _result("a", "ref", 1e-3, 2.0, seed=1, median_step_s=0.012, optimizer_state_bytes=800, callback_state_bytes=0),
        _result("a", "m", 1e-3, 2.0, median_step_s=0.022, optimizer_state_bytes=800, callback_state_bytes=1200),
    ]
    text = cost_markdown(results, "ref")
    # the reference's median step time is 11 ms; m's 22 ms -> 2.00x; m holds 1,200 bytes more
    assert "| a | ref | 2 | 11.0 | 1.00x | 800 | 0 | 0 |" in text
    assert "| a | m | 1 | 22.0 | 2.00x | 800 | 1,200 | 1,200 |" in text
