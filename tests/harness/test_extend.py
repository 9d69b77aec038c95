"""Where the base-LR grid grows: edges of hand-made results."""

import pytest

from lightning_hybrid.harness.extend import beyond, extensions, on_1_3_grid


def _run(method, lr, final, workload="w", status="ok"):
    return {
        "workload": workload,
        "method": method,
        "lr": lr,
        "seed": 0,
        "status": status,
        "final_val_loss": final,
        "val": [(10, final)],
        "reason": "diverged",
    }


def test_the_next_lr_stays_on_the_1_3_sequence():
    assert on_1_3_grid(0.09) == pytest.approx(0.1) and on_1_3_grid(0.0009) == pytest.approx(0.001)
    assert on_1_3_grid(2.4e-3) == pytest.approx(3e-3)
    assert beyond([3e-4, 1e-3, 3e-3, 1e-2, 3e-2], up=True) == 0.1  # 3e-2 * 3 = 0.09 -> 0.1
    assert beyond([3e-4, 1e-3, 3e-3, 1e-2, 3e-2], up=False) == 1e-4
    assert beyond([3e-4, 3e-3, 3e-2], up=True) == 0.3
    with pytest.raises(ValueError, match="at least two LRs"):
        beyond([1e-3], up=True)


BASE = [3e-3, 1e-2]  # one step: x 3.33, so 0.03 and 0.1 up, 1e-3 down


def test_a_method_best_at_an_edge_gets_the_next_lr_until_the_limit():
    best_at_top = [_run("m", 3e-3, 2.0), _run("m", 1e-2, 1.5)]
    assert extensions(best_at_top, BASE, {"m"}, limit=2) == {"w": {"m": [0.03]}}
    still_at_top = best_at_top + [_run("m", 0.03, 1.4)]
    assert extensions(still_at_top, BASE, {"m"}, limit=2) == {"w": {"m": [0.03, 0.1]}}
    assert extensions(still_at_top + [_run("m", 0.1, 1.3)], BASE, {"m"}, limit=2) == {"w": {"m": [0.03, 0.1]}}
    assert extensions([_run("m", 3e-3, 1.0), _run("m", 1e-2, 1.5)], BASE, {"m"}, limit=1) == {"w": {"m": [0.001]}}


def test_no_extension_inside_the_grid_for_failures_or_unswept_methods():
    inside = [_run("m", 3e-3, 2.0), _run("m", 1e-2, 1.5), _run("m", 0.03, 1.8)]
    assert extensions(inside, BASE, {"m"}, limit=2) == {"w": {"m": [0.03]}}  # the one it ran, no new one
    assert extensions([_run("m", 3e-3, 2.0), _run("m", 1e-2, 1.5)], BASE, set(), limit=2) == {}
    failed = [_run("m", 3e-3, 2.0, status="failed"), _run("m", 1e-2, 1.5, status="failed")]
    assert extensions(failed, BASE, {"m"}, limit=2) == {}
