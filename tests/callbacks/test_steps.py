"""What the hybrid callbacks share (lightning_hybrid/callbacks/_steps.py): the refusal of sharded strategies and
the LR multiplier that survives any scheduler."""

from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy

from lightning_hybrid import AuxLRController, TrustRegion
from lightning_hybrid.callbacks._steps import ScaledLR


class MyFSDP(FSDPStrategy):  # a user's subclass is still sharded
    pass


@pytest.mark.parametrize("callback", [TrustRegion(), AuxLRController()])
@pytest.mark.parametrize("strategy", [FSDPStrategy, MyFSDP])
def test_sharded_strategies_are_refused_in_setup(callback, strategy):
    with pytest.raises(ValueError, match=f"{strategy.__name__}, which shards them"):
        callback.setup(SimpleNamespace(strategy=strategy()), None, "fit")
    callback.setup(SimpleNamespace(strategy=DDPStrategy()), None, "fit")  # a replicated strategy passes


def _optimizer(lr=0.1):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr)


def test_scaled_lr_scales_and_unscales_around_the_schedulers_step():
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


def test_scaled_lr_keeps_a_change_made_to_the_scaled_lr_and_round_trips():
    opt = _optimizer()
    lrs = ScaledLR()
    lrs.attach([opt], replace=False)
    lrs.apply([opt], 2.0)
    opt.param_groups[0]["lr"] = 0.1  # a ReduceLROnPlateau halved the scaled 0.2
    lrs.apply([opt], 3.0)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.15)  # 0.05 scheduled x 3
    restored = ScaledLR()
    restored.load_state_dict(lrs.state_dict())
    assert restored.scheduled == lrs.scheduled and restored.multiplier == 3.0
