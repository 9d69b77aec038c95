"""LastCheckpoint in a Trainer: when it writes last.ckpt, that it writes it whole, what an exception leaves,
and the RNG state a resume continues from. (Ctrl-C, SIGTERM and resuming the main job: tests/jobs/test_resume.py.)"""

import random

import lightning.pytorch as pl
import numpy as np
import pytest
import torch

from helpers.hybrid import fit
from lightning_hybrid import LastCheckpoint
from lightning_hybrid.callbacks.checkpoint import _rng_state, _set_rng


class Saves(pl.Callback):
    """The global step of every checkpoint written (Lightning calls on_save_checkpoint for each)."""

    def __init__(self) -> None:
        self.steps: list[int] = []

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        self.steps.append(checkpoint["global_step"])


def test_writes_every_n_steps_and_by_default_every_twentieth_of_the_run(tmp_path):
    saves = Saves()
    fit([LastCheckpoint(tmp_path, every_n_steps=4), saves], max_steps=12, enable_checkpointing=True)
    assert saves.steps == [4, 8, 12]
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["global_step"] == 12
    assert not list(tmp_path.glob("*.partial"))  # written beside it, then renamed over it
    default = Saves()
    fit([LastCheckpoint(tmp_path / "default"), default], max_steps=40, enable_checkpointing=True)
    assert default.steps == [2 * i for i in range(1, 21)]  # 5% of 40 steps


class FailAt(pl.Callback):
    def __init__(self, step: int, inside: bool) -> None:
        self.step, self.inside = step, inside

    def on_before_backward(self, trainer, pl_module, loss):
        if self.inside and trainer.global_step == self.step:
            raise RuntimeError("inside the step")

    def on_train_epoch_end(self, trainer, pl_module):  # between two steps (6 steps an epoch)
        if not self.inside and trainer.global_step == self.step:
            raise RuntimeError("between steps")


@pytest.mark.parametrize(("inside", "kept"), [(True, 4), (False, 6)])
def test_an_exception_inside_a_step_keeps_the_periodic_checkpoint_one_between_steps_writes_one(tmp_path, inside, kept):
    keeper = LastCheckpoint(tmp_path, every_n_steps=4)
    with pytest.raises(RuntimeError):
        if inside:
            with pytest.warns(UserWarning, match="stopped inside step 6 .*last.ckpt keeps step 4"):
                fit([keeper, FailAt(6, inside)], max_steps=12, enable_checkpointing=True)
        else:
            fit([keeper, FailAt(6, inside)], max_steps=12, enable_checkpointing=True)
    assert torch.load(tmp_path / "last.ckpt", weights_only=True)["global_step"] == kept
    assert keeper.stopped_by == "RuntimeError"


def test_the_rng_state_round_trips_through_numbers_and_tensors():
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    state = _rng_state()
    # oracle: the draws that follow the saved state, made again after restoring it
    expected = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    _set_rng(state)
    again = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    torch.testing.assert_close(again[0], expected[0], rtol=0, atol=0)
    assert np.array_equal(again[1], expected[1]) and again[2] == expected[2]
    assert all(isinstance(v, (torch.Tensor, int, float, bool)) for v in state.values())  # weights_only-safe


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="`every_n_steps` must be"):
        LastCheckpoint(every_n_steps=0)
    with pytest.raises(ValueError, match="`lost_fraction` must be"):
        LastCheckpoint(lost_fraction=1.5)
