"""Sentence encoders (a transformer + mean pooling + L2 normalization, as sentence-transformers'
all-MiniLM-L6-v2) and a LightningModule that trains one only through a teacher (Distillation)."""

from __future__ import annotations

import copy

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn

from lightning_hybrid.distill.capture import main_tensor
from lightning_hybrid.optim import OPTIMIZERS, SCHEDULES, check_choice, lightning_optimizers


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
    teacher's copy converted by TernaryQAT). Optimizer and schedule as the main job's LanguageModel."""

    def __init__(
        self,
        encoder: SentenceEncoder,
        lr: float = 2e-4,
        weight_decay: float = 0.01,
        betas: tuple[float, float] = (0.9, 0.999),
        warmup_steps: int = 50,
        decay_steps: int = 1000,
        min_lr_ratio: float = 0.1,
        optimizer: str = "adamw",
        schedule: str = "cosine",
    ) -> None:
        super().__init__()
        if not isinstance(encoder, SentenceEncoder):
            raise TypeError(f"`encoder` must be a SentenceEncoder, got {type(encoder).__name__}.")
        if not lr > 0:
            raise ValueError(f"`lr` must be positive, got {lr!r}.")
        check_choice(optimizer, OPTIMIZERS, "optimizer")
        check_choice(schedule, SCHEDULES, "schedule")
        self.save_hyperparameters(ignore=["encoder"])
        self.encoder = copy.deepcopy(encoder).train()  # a pretrained teacher arrives in eval mode

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask)

    def training_step(self, batch, batch_idx: int) -> None:
        self(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])  # Distillation compares this call
        return None

    def configure_optimizers(self):
        return lightning_optimizers(self, self.hparams)
