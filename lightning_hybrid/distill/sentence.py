"""Sentence encoders (a transformer + mean pooling + L2 normalization, as sentence-transformers'
all-MiniLM-L6-v2) and a LightningModule that trains one only through a teacher (Distillation)."""

from __future__ import annotations

import copy
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn
from typing_extensions import override

from lightning_hybrid.distill.capture import main_tensor
from lightning_hybrid.optim import OptimizerSettings, lightning_optimizers
from lightning_hybrid.utils.settings import pick, strict


class MeanPool(nn.Module):
    """The mean of the token states where attention_mask is 1, scaled to unit length."""

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return F.normalize(mean, dim=-1)


class SentenceEncoder(nn.Module):
    """`transformer(input_ids=..., attention_mask=...)` (a Hugging Face encoder, or any module returning the
    token states first) followed by MeanPool: unit-length sentence embeddings."""

    def __init__(self, transformer: nn.Module) -> None:
        super().__init__()
        self.transformer = transformer
        self.pool = MeanPool()

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = main_tensor(self.transformer(input_ids=input_ids, attention_mask=attention_mask), "the transformer")
        return self.pool(hidden, attention_mask)


class SentenceStudent(pl.LightningModule):
    """A SentenceEncoder to be trained by Distillation: it has no loss of its own (training_step returns
    None; use task_weight=0), and starts as a copy of `encoder` (a ternary student of a teacher is the
    teacher's copy converted by TernaryQAT).

    `optimizer_settings` are lightning_hybrid.optim.OptimizerSettings fields (lr, weight_decay, betas,
    warmup_steps, decay_steps, min_lr_ratio, optimizer, schedule) over DEFAULTS, which suit fine-tuning
    a pretrained encoder.
    """

    DEFAULTS = OptimizerSettings(lr=2e-4, weight_decay=0.01, betas=(0.9, 0.999), warmup_steps=50, decay_steps=1000)

    def __init__(self, encoder: SentenceEncoder, **optimizer_settings: Any) -> None:
        super().__init__()
        if not isinstance(encoder, SentenceEncoder):
            raise TypeError(f"`encoder` must be a SentenceEncoder, got {type(encoder).__name__}.")
        strict(OptimizerSettings, optimizer_settings, "SentenceStudent")  # names every unknown argument
        self.optimizer_settings = pick(OptimizerSettings, optimizer_settings, self.DEFAULTS)
        self.save_hyperparameters(ignore=["encoder"])
        self.encoder = copy.deepcopy(encoder).train()  # a pretrained teacher arrives in eval mode

    @override
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask)

    @override
    def training_step(self, batch, batch_idx: int) -> None:
        self(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])  # Distillation compares this call
        return None

    @override
    def configure_optimizers(self):
        return lightning_optimizers(self, self.optimizer_settings)
