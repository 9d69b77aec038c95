"""Distillation from a frozen teacher into a (ternary) student: losses, hooks, the Lightning wrapper."""

from lightning_hybrid.distill.losses import DistillLoss, hidden_distance, kl_logits
from lightning_hybrid.distill.module import Distillation

__all__ = ["DistillLoss", "Distillation", "hidden_distance", "kl_logits"]
