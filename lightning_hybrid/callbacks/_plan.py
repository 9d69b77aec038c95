"""What PrecisionAllocator needs from a Trainer: held-out batches and a loss for a batch."""

from __future__ import annotations

import itertools
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities.model_helpers import is_overridden


def held_out_batches(trainer: pl.Trainer, pl_module: pl.LightningModule, count: int) -> list[Any]:
    """The first `count` validation batches (the DataModule's, else the module's own val_dataloader),
    on the module's device."""
    source = trainer.datamodule if trainer.datamodule is not None else pl_module
    if not is_overridden("val_dataloader", source):
        raise ValueError(
            "PrecisionAllocator measures layer sensitivity on validation batches, but neither the DataModule nor "
            "the LightningModule defines val_dataloader(): add one, or pass a precomputed plan to TernaryQAT(plan=...)."
        )
    loader = source.val_dataloader()
    batches = list(itertools.islice(iter(loader), count))
    if not batches:
        raise ValueError("PrecisionAllocator: val_dataloader() yielded no batch to measure layer sensitivity on.")
    device = next(pl_module.parameters()).device
    return [pl_module.transfer_batch_to_device(b, device, 0) for b in batches]


def step_loss(module: pl.LightningModule, batch: Any) -> torch.Tensor:
    """The loss training_step returns for `batch` (a tensor, or a dict's "loss"), with self.log muted:
    outside the fit loop Lightning has nowhere to log to."""
    log, log_dict = module.log, module.log_dict
    module.log = module.log_dict = lambda *args, **kwargs: None  # type: ignore[method-assign]
    try:
        out = module.training_step(batch, 0)
    finally:
        module.log, module.log_dict = log, log_dict  # type: ignore[method-assign]
    loss = out["loss"] if isinstance(out, dict) else out
    if not isinstance(loss, torch.Tensor):
        raise ValueError(
            f"training_step returned {type(out).__name__}, not a loss tensor: give PrecisionAllocator(loss_fn=...)."
        )
    return loss
