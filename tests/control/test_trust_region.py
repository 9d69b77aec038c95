"""TrustRegionCore. Oracles: the bound itself (||dtheta|| <= mu to float32 rounding, rel 1e-5), the
direction of the step (cosine 1 - 1e-6), exact restoration (torch.equal), and -g . dtheta computed by hand."""

import math

import pytest
import torch

from lightning_hybrid.control.trust_region import TrustRegionCore


def _step(core: TrustRegionCore, params, proposal, grads=None, **kwargs):
    old = [p.clone() for p in params]
    core.snapshot(params)
    for p, d in zip(params, proposal):
        p.add_(d)
    grads = grads or [torch.zeros_like(p) for p in params]
    return old, core.constrain(params, grads, **kwargs)


def _flat(ts):
    return torch.cat([t.reshape(-1) for t in ts])


def test_global_bound_scales_the_step_onto_the_sphere_keeping_its_direction():
    core = TrustRegionCore(initial_radius=0.5)
    params = [torch.randn(4, 3), torch.randn(3)]
    proposal = [torch.randn(4, 3), torch.randn(3)]
    g = [torch.randn(4, 3), torch.randn(3)]
    old, outcome = _step(core, params, proposal, g)
    step = _flat(params) - _flat(old)
    assert float(step.norm()) == pytest.approx(0.5, rel=1e-5)
    assert float(torch.nn.functional.cosine_similarity(step, _flat(proposal), dim=0)) > 1 - 1e-6
    assert outcome.norm == pytest.approx(float(_flat(proposal).norm()), rel=1e-5)
    assert outcome.cut_fraction > 0 and not outcome.restored
    assert outcome.predicted_decrease == pytest.approx(-float(_flat(g) @ step), rel=1e-4)


def test_a_step_inside_the_region_is_untouched():
    core = TrustRegionCore(initial_radius=10.0)
    params = [torch.randn(5)]
    old, outcome = _step(core, params, [torch.full((5,), 0.1)])
    assert torch.equal(params[0], old[0] + 0.1) and outcome.cut_fraction == 0.0


def test_tensor_scope_bounds_each_tensor_relative_to_its_norm():
    core = TrustRegionCore(initial_radius=0.01, scope="tensor")
    params = [torch.randn(8, 8), torch.zeros(4)]  # a fresh zero bias is measured against 1e-2 * sqrt(4)
    old, _ = _step(core, params, [torch.randn(8, 8), torch.randn(4)])
    assert float((params[0] - old[0]).norm()) <= 0.01 * float(old[0].norm()) * (1 + 1e-5)
    assert float((params[1] - old[1]).norm()) == pytest.approx(0.01 * 1e-2 * 2, rel=1e-5)


def test_a_non_finite_step_puts_the_parameters_back():
    core = TrustRegionCore(initial_radius=1.0)
    params = [torch.randn(3), torch.randn(2)]
    old, outcome = _step(core, params, [torch.tensor([0.0, float("nan"), 0.0]), torch.zeros(2)])
    assert outcome.restored
    assert all(torch.equal(p, o) for p, o in zip(params, old))
    assert core.skipped == 1 and core.radius == 0.5  # counted and shrunk like a skipped step


def test_calibration_sets_the_radius_to_twice_the_largest_early_step():
    core = TrustRegionCore(calibration_steps=3)
    params = [torch.zeros(2)]
    for size in (0.1, 0.3, 0.2):
        assert core.radius is None
        _step(core, params, [torch.tensor([size, 0.0])])
    assert core.radius == pytest.approx(0.6, rel=1e-6)


def _run_windows(core: TrustRegionCore, losses, cut: bool):
    params = [torch.zeros(4)]
    for loss in losses:
        core.observe_loss(loss)
        size = 2 * core.radius if cut else 0.1 * core.radius
        _step(core, params, [torch.full((4,), size / 2)], [torch.full((4,), -1.0)])


def test_good_windows_with_cut_steps_grow_the_radius():
    core = TrustRegionCore(initial_radius=1.0, window=10)
    _run_windows(core, [3.0 - 0.01 * i for i in range(25)], cut=True)
    assert core.radius == pytest.approx(4.0)  # two finished windows, x2 each
    assert core.ratio > 0


def test_growth_stops_at_max_growth_times_the_initial_radius():
    core = TrustRegionCore(initial_radius=1.0, window=10, max_growth=3.0)
    _run_windows(core, [3.0 - 0.01 * i for i in range(45)], cut=True)
    assert core.radius == 3.0


def test_good_windows_without_cut_steps_leave_it():
    core = TrustRegionCore(initial_radius=1.0, window=10)
    _run_windows(core, [3.0 - 0.01 * i for i in range(25)], cut=False)
    assert core.radius == 1.0


def test_a_clearly_rising_loss_shrinks_the_radius():
    core = TrustRegionCore(initial_radius=1.0, window=10, spike_zscore=100.0)
    _run_windows(core, [3.0 + 0.05 * i for i in range(25)], cut=True)
    assert core.radius == pytest.approx(0.25)
    assert core.ratio < 0


def test_a_spike_shrinks_at_once_and_is_counted():
    core = TrustRegionCore(initial_radius=1.0, window=1000)
    gen = torch.Generator().manual_seed(0)
    for _ in range(40):
        assert not core.observe_loss(2.0 + 0.01 * float(torch.randn(1, generator=gen)))
    assert core.observe_loss(3.0)
    assert core.spikes == 1 and core.radius == 0.5


def test_skip_shrinks_and_counts():
    core = TrustRegionCore(initial_radius=1.0)
    core.skip()
    assert core.radius == 0.5 and core.skipped == 1 and math.isnan(core.last_predicted)


def test_state_round_trip():
    a = TrustRegionCore(initial_radius=1.0, window=10)
    _run_windows(a, [3.0 - 0.01 * i for i in range(15)], cut=True)
    b = TrustRegionCore(initial_radius=7.0, window=10)
    b.load_state_dict(a.state_dict())
    assert b.state_dict() == pytest.approx(a.state_dict(), nan_ok=True)
    for core in (a, b):
        _run_windows(core, [2.8 - 0.01 * i for i in range(12)], cut=True)
    assert a.radius == b.radius and a.ratio == b.ratio


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"initial_radius": -1.0}, "initial_radius"),
        ({"scope": "layer"}, "scope"),
        ({"grow": 1.0}, "grow"),
        ({"shrink": 1.5}, "shrink"),
        ({"good_ratio": -1.0}, "bad_ratio"),
        ({"window": 1}, "window"),
        ({"calibration_steps": -2}, "calibration_steps"),
        ({"min_radius": 1.0, "max_radius": 0.5}, "min_radius"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrustRegionCore(**kwargs)
