"""What the hybrid callbacks share (lightning_hybrid/callbacks/_steps.py): the refusal of sharded strategies,
the one guard a step, and the former import path of ScaledLR."""

import warnings
from types import SimpleNamespace

import lightning.pytorch as pl
import pytest
from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy

from helpers.hybrid import ScheduledClassifier, fit
from lightning_hybrid import AuxLRController, TrustRegion
from lightning_hybrid.callbacks._steps import ScaledLR
from lightning_hybrid.control import lr_scale as control_lr_scale
from lightning_hybrid.control.trace import ParameterTrace


class MyFSDP(FSDPStrategy):  # a user's subclass is still sharded
    pass


@pytest.mark.parametrize("callback", [TrustRegion(), AuxLRController()])
@pytest.mark.parametrize("strategy", [FSDPStrategy, MyFSDP])
def test_sharded_strategies_are_refused_in_setup(callback, strategy):
    with pytest.raises(ValueError, match=f"{strategy.__name__}, which shards them"):
        callback.setup(SimpleNamespace(strategy=strategy()), None, "fit")
    callback.setup(SimpleNamespace(strategy=DDPStrategy()), None, "fit")  # a replicated strategy passes


def test_scaled_lr_keeps_its_former_import_path():
    assert ScaledLR is control_lr_scale.ScaledLR


class CountReductions(pl.Callback):
    """Counts the strategy's reductions (the collectives under DDP) made during training."""

    def __init__(self) -> None:
        self.count = 0

    def on_train_start(self, trainer, pl_module):  # after Lightning's own (the loaders' lengths)
        reduce = trainer.strategy.reduce

        def counted(*args, **kwargs):
            self.count += 1
            return reduce(*args, **kwargs)

        trainer.strategy.reduce = counted


@pytest.mark.parametrize("order", ["controller first", "region first"])
def test_the_controller_and_the_region_share_one_reduction_a_step(order, monkeypatch):
    callbacks = [AuxLRController(aux_lr=3e-2, learn_until=1.0), TrustRegion()]
    reads, read = [], ParameterTrace.read
    monkeypatch.setattr(ParameterTrace, "read", lambda self, *a: reads.append(1) or read(self, *a))
    counter = CountReductions()
    fit((callbacks if order == "controller first" else callbacks[::-1]) + [counter], max_steps=8)
    assert counter.count == 8
    # Whichever runs first, both saw the step's loss, reduced once: the region adapted on it.
    assert callbacks[1].core.observed == 8 and callbacks[0].summary()["steps"] == 8
    if order == "controller first":
        assert not reads  # the signal's sums came with the guard's transfer
    else:
        assert len(reads) == 8  # the region checked first: the controller reads its signal on its own


def test_a_non_finite_step_is_reported_once_naming_both_callbacks():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit([AuxLRController(), TrustRegion(initial_radius=1.0)], max_steps=6, model=ScheduledClassifier(nan_at_step=3))
    skipped = [str(w.message) for w in caught if "skipped" in str(w.message)]
    assert skipped == [
        "AuxLRController, TrustRegion: step 3 skipped: non-finite loss (nan); the weights are unchanged."
    ]


def test_each_callback_keeps_its_own_guard_without_the_other():
    region = TrustRegion()
    fit([region], max_steps=4)
    assert region.guard.names == ["TrustRegion"] and region.core.observed == 4
