"""What PrecisionAllocator and LearnedScale need from a Trainer: held-out batches and a loss for a batch."""

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


HELDOUT_SEED = 2024  # every run (and every DDP rank) draws the same held-out batches in the same order


class HeldOutDraw:
    """Batch j of the DataModule's `heldout_dataloader()`, drawn by its index alone: pass p over the
    held-out items is a permutation seeded by p, so every rank draws the same batch and a resumed run
    continues the sequence where it stopped. `who`/`argument` name the setting in errors."""

    def __init__(self, trainer: pl.Trainer, who: str, argument: str) -> None:
        source = trainer.datamodule
        if source is None or not callable(getattr(source, "heldout_dataloader", None)):
            raise ValueError(
                f"{who}({argument}) reads batches the run never trains on from the DataModule's heldout_dataloader(), "
                f"but {'no DataModule was given' if source is None else type(source).__name__ + ' defines none'}: "
                "give one (lightning_hybrid's DataModules take heldout_fraction=...), or drop the argument."
            )
        self.who, self.argument = who, argument
        loader = source.heldout_dataloader()
        self.dataset, self.collate = loader.dataset, loader.collate_fn
        self.source = type(source).__name__
        self.batch_size = min(loader.batch_size or 1, len(self.dataset)) or 1
        self.per_pass = len(self.dataset) // self.batch_size  # whole batches only: a remnant is noisier

    @property
    def empty(self) -> bool:
        return self.per_pass == 0

    def refuse_empty(self) -> None:
        if self.empty:
            raise ValueError(
                f"{self.who}({self.argument}): {self.source}.heldout_dataloader() holds no item, and the run "
                "goes past its first epoch: set the DataModule's heldout_fraction above 0."
            )

    def __call__(self, index: int) -> Any:
        self.refuse_empty()
        passes, position = divmod(index, self.per_pass)
        order = torch.randperm(len(self.dataset), generator=torch.Generator().manual_seed(HELDOUT_SEED + passes))
        items = order[position * self.batch_size : (position + 1) * self.batch_size].tolist()
        return self.collate([self.dataset[i] for i in items])


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
