"""MLPClassifier: a multilayer perceptron for flat feature vectors (the suite's digits workload)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from typing_extensions import override

from lightning_hybrid.models.supervised import SupervisedModule
from lightning_hybrid.optim import OptimizerSettings
from lightning_hybrid.utils.checks import number, positive_int
from lightning_hybrid.utils.settings import pick


class MLPClassifier(SupervisedModule):
    """`n_hidden` Linear + LayerNorm + GELU blocks of width `hidden`, then the Linear `head` (which the
    default TernaryQAT rule keeps at full precision). Logs val_loss (cross-entropy) and val_acc.

    lr, weight_decay, betas, warmup_steps, decay_steps, min_lr_ratio, optimizer and schedule are
    lightning_hybrid.optim.OptimizerSettings', flat so that they are the module's hyperparameters."""

    def __init__(
        self,
        in_features: int = 64,
        num_classes: int = 10,
        hidden: int = 256,
        n_hidden: int = 2,
        dropout: float = 0.0,
        lr: float = 1e-3,
        weight_decay: float = 0.1,
        betas: tuple[float, float] = (0.9, 0.99),
        warmup_steps: int = 100,
        decay_steps: int = 2000,
        min_lr_ratio: float = 0.1,
        optimizer: str = "adamw",
        schedule: str = "cosine",
    ) -> None:
        super().__init__()
        for name, value in (("in_features", in_features), ("num_classes", num_classes), ("hidden", hidden)):
            positive_int(name, value)
        positive_int("n_hidden", n_hidden)
        number("dropout", dropout, 0, 1, open_high=True)
        self.save_hyperparameters()
        self.optimizer_settings = pick(OptimizerSettings, self.hparams)
        widths = [in_features] + [hidden] * n_hidden
        self.body = nn.Sequential(
            *(
                nn.Sequential(nn.Linear(a, b), nn.LayerNorm(b), nn.GELU(), nn.Dropout(dropout))
                for a, b in zip(widths, widths[1:])
            )
        )
        self.head = nn.Linear(hidden, num_classes)

    @override
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))

    @override
    def _loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self(x).float(), y)

    @override
    def validation_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        logits = self(x).float()
        self.log("val_loss", F.cross_entropy(logits, y), on_epoch=True, prog_bar=True, sync_dist=True)
        self.log("val_acc", (logits.argmax(-1) == y).float().mean(), on_epoch=True, sync_dist=True)
