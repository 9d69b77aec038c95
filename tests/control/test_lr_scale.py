"""ScaledLR (lightning_hybrid/control/lr_scale.py): the LR multiplier that survives any scheduler, its flat state."""

import pytest
import torch

from lightning_hybrid.control.lr_scale import ScaledLR


def _optimizer(lr=0.1, groups=1):
    params = [torch.nn.Parameter(torch.zeros(2)) for _ in range(groups)]
    return torch.optim.SGD([{"params": [p], "lr": lr * (i + 1)} for i, p in enumerate(params)])


def test_scales_and_unscales_around_the_schedulers_step():
    opt = _optimizer()
    lrs = ScaledLR()
    lrs.attach([opt], replace=False)
    lrs.apply([opt], 4.0)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.4)
    lrs.unscale(opt, 0)  # what the schedulers see after the step
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    opt.param_groups[0]["lr"] = 0.05  # a scheduler stepped
    lrs.rescale([opt])
    assert opt.param_groups[0]["lr"] == pytest.approx(0.2)


def test_keeps_a_change_made_to_the_scaled_lr():
    opt = _optimizer()
    lrs = ScaledLR()
    lrs.attach([opt], replace=False)
    lrs.apply([opt], 2.0)
    opt.param_groups[0]["lr"] = 0.1  # a ReduceLROnPlateau halved the scaled 0.2
    lrs.apply([opt], 3.0)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.15)  # 0.05 scheduled x 3


def test_replace_holds_the_base_lr_whatever_the_schedule_sets():
    opt = _optimizer()
    opt.param_groups[0]["initial_lr"] = 0.1
    lrs = ScaledLR()
    lrs.attach([opt], replace=True)
    lrs.apply([opt], 2.0)
    lrs.unscale(opt, 0)
    opt.param_groups[0]["lr"] = 0.01  # a scheduler stepped
    lrs.rescale([opt])
    assert opt.param_groups[0]["lr"] == pytest.approx(0.2)


def test_state_is_flat_numbers_and_round_trips_over_optimizers_and_groups():
    opts = [_optimizer(0.1, groups=2), _optimizer(0.3, groups=3)]
    lrs = ScaledLR()
    lrs.attach(opts, replace=False)
    lrs.apply(opts, 3.0)
    state = lrs.state_dict()
    assert all(isinstance(v, (int, float)) for v in state.values())
    assert state["lr.optimizers"] == 2 and state["lr.1.groups"] == 3
    restored = ScaledLR()
    restored.load_state_dict(state)
    assert restored.scheduled == lrs.scheduled and restored.multiplier == 3.0
    restored.attach(opts, replace=False)  # the restored schedule is kept: its groups match
    assert restored.scheduled == lrs.scheduled


def test_a_state_without_the_counts_still_loads():
    # Checkpoints written before the counts were stored hold only the per-group LRs and the multiplier.
    restored = ScaledLR()
    restored.load_state_dict({"lr.0.0": 0.1, "lr.0.1": 0.2, "lr.1.0": 0.3, "lr.multiplier": 2.0})
    assert restored.scheduled == [[0.1, 0.2], [0.3]] and restored.multiplier == 2.0
