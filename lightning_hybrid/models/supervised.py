"""SupervisedModule: the training and validation steps and optimizers the project's models share."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from typing_extensions import override

from lightning_hybrid.optim import lightning_optimizers


class SupervisedModule(pl.LightningModule):
    """A model with one loss: it logs `train_loss` every step and `val_loss` once per validation, and
    builds its optimizer from `self.optimizer_settings` (lightning_hybrid.optim.OptimizerSettings)."""

    def _loss(self, batch) -> torch.Tensor:
        raise NotImplementedError

    def loss(self, batch) -> torch.Tensor:
        """The training loss of a batch, nothing logged."""
        return self._loss(batch)

    @override
    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        loss = self._loss(batch)
        self.log("train_loss", loss, on_step=True, on_epoch=False, prog_bar=True)
        return loss

    @override
    def validation_step(self, batch, batch_idx: int) -> None:
        self.log("val_loss", self._loss(batch), on_step=False, on_epoch=True, prog_bar=True, sync_dist=True)

    @override
    def configure_optimizers(self):
        return lightning_optimizers(self, self.optimizer_settings)
