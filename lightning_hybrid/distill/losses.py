"""Distillation losses in plain torch (no Lightning), each with its source.

  * logits: KL(p_T || p_S) with p = softmax(z / T), times T^2 so its gradient keeps the scale of the
    hard-label loss as T changes (Hinton, Vinyals, Dean 2015, "Distilling the Knowledge in a Neural
    Network", sec. 2). Every leading dimension is a separate distribution (tokens of an LM), averaged.
  * hidden states: mean squared error (FitNets, Romero et al. 2015) or 1 - cosine similarity along the
    feature dimension (as DistilBERT's cosine embedding loss, Sanh et al. 2019), averaged over positions.
The total is task_weight * task + kl_weight * KL + hidden_weight * mean over layer pairs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lightning_hybrid.utils.checks import choice, non_negative, positive

HIDDEN_LOSSES = ("mse", "cosine")


def kl_logits(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * mean over rows of KL(softmax(teacher / T) || softmax(student / T)), in fp32."""
    s = student.float().reshape(-1, student.shape[-1]) / temperature
    t = teacher.float().reshape(-1, teacher.shape[-1]) / temperature
    kl = F.kl_div(F.log_softmax(s, dim=-1), F.log_softmax(t, dim=-1), log_target=True, reduction="batchmean")
    return kl * temperature**2


def hidden_distance(student: torch.Tensor, teacher: torch.Tensor, kind: str) -> torch.Tensor:
    """MSE or 1 - cosine similarity along the last dimension, averaged, in fp32."""
    s, t = student.float(), teacher.float()
    if kind == "mse":
        return F.mse_loss(s, t)
    return (1.0 - F.cosine_similarity(s, t, dim=-1)).mean()


@dataclass
class DistillLoss:
    """Weights and settings of the combined loss; `__call__` returns every component and the total."""

    temperature: float = 2.0
    task_weight: float = 1.0
    kl_weight: float = 1.0
    hidden_weight: float = 0.0
    hidden_loss: str = "mse"

    def __post_init__(self) -> None:
        for name in ("task_weight", "kl_weight", "hidden_weight"):
            setattr(self, name, non_negative(name, getattr(self, name)))
        self.temperature = positive("temperature", self.temperature)
        choice("hidden_loss", self.hidden_loss, HIDDEN_LOSSES)
        if self.kl_weight == 0 and self.hidden_weight == 0:
            raise ValueError("`kl_weight` and `hidden_weight` are both 0: nothing to learn from the teacher.")

    def __call__(self, task, student_logits, teacher_logits, student_hidden: Mapping, teacher_hidden: Mapping) -> dict:
        """task: the student's own loss (or None); *_hidden: {pair name: tensor}, the same names in both."""
        parts = {}
        if task is not None:
            parts["task"] = task
        if self.kl_weight:
            parts["kl"] = kl_logits(student_logits, teacher_logits, self.temperature)
        if self.hidden_weight:
            terms = [hidden_distance(student_hidden[k], teacher_hidden[k], self.hidden_loss) for k in student_hidden]
            parts["hidden"] = torch.stack(terms).mean()
        weights = {"task": self.task_weight, "kl": self.kl_weight, "hidden": self.hidden_weight}
        parts["loss"] = sum(weights[k] * v for k, v in parts.items())
        return parts
