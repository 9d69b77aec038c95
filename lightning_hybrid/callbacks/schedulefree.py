"""ScheduleFreeMode: the train()/eval() switching that schedule-free optimizers need."""

from __future__ import annotations

import lightning.pytorch as pl
from typing_extensions import override


def _switchable(trainer: pl.Trainer) -> list:
    return [o for o in trainer.optimizers if callable(getattr(o, "train", None)) and callable(getattr(o, "eval", None))]


class ScheduleFreeMode(pl.Callback):
    """Puts schedule-free optimizers in train mode for training steps and in eval mode for validation
    and after fit, so validation, the final weights and exports see the averaged iterate x rather than
    the interpolation point y. Optimizers without train()/eval() are left alone.

    Checkpoints written during training hold y and the optimizer state in train mode, which resumes
    correctly; call `optimizer.eval()` before evaluating weights loaded from such a checkpoint.
    """

    def _mode(self, trainer: pl.Trainer, train: bool) -> None:
        for optimizer in _switchable(trainer):
            optimizer.train() if train else optimizer.eval()

    @override
    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch, batch_idx: int) -> None:
        # Every step, not once per epoch: validation can run mid-epoch, and switching to the mode the
        # optimizer is already in costs nothing.
        self._mode(trainer, train=True)

    @override
    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._mode(trainer, train=False)

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._mode(trainer, train=False)
