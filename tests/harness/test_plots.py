"""The harness's plots (harness/plots.py, matplotlib): one PNG per view and workload, the steps view only
when the reference reached its target."""

import pytest

pytest.importorskip("matplotlib")

from lightning_hybrid.harness.plots import plot_all  # noqa: E402

PNG = b"\x89PNG\r\n\x1a\n"


def _result(workload, method, lr, seed, curve):
    return {
        "workload": workload,
        "method": method,
        "lr": lr,
        "seed": seed,
        "status": "ok",
        "val": curve,
        "median_step_s": 0.01,
        "final_val_loss": curve[-1][1],
    }


def test_every_workload_gets_its_curves_lr_and_steps_plots(tmp_path):
    results = [
        _result(w, m, lr, s, [(10, 3.0 + lr), (20, 2.0 + lr)])
        for w in ("a", "b")
        for m in ("ref", "other")
        for lr in (1e-3, 1e-2)
        for s in (0, 1)
    ]
    paths = plot_all(results, "ref", tmp_path)
    names = sorted(p.name for p in paths)
    assert names == sorted(f"{w}_{v}.png" for w in ("a", "b") for v in ("curves", "lr", "steps"))
    assert all(p.read_bytes().startswith(PNG) for p in paths)


def test_without_the_reference_there_is_no_steps_plot(tmp_path):
    results = [_result("a", "other", 1e-3, s, [(10, 2.0)]) for s in (0, 1)]
    assert sorted(p.name for p in plot_all(results, "ref", tmp_path)) == ["a_curves.png", "a_lr.png"]
