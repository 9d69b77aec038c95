"""Optimizers and LR schedules by name, so configs can pick the baselines a user would reach for.

  adamw               torch.optim.AdamW
  schedulefree_adamw  schedulefree.AdamWScheduleFree (Defazio et al. 2024); warm-up is its own, and it
                      needs optimizer.train() / .eval() around training and evaluation (ScheduleFreeMode)
  prodigy             prodigyopt.Prodigy (Mishchenko & Defazio 2023); lr is a multiplier of its own
                      step-size estimate, 1.0 untuned
The last two come with the `bench` extra and are imported only when asked for.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterable

import torch

OPTIMIZERS = ("adamw", "schedulefree_adamw", "prodigy")
SCHEDULES = ("cosine", "constant")


def _require(module: str, name: str):
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"optimizer={name!r} needs the {module!r} package: pip install 'lightning_hybrid[bench]'") from err


def check_choice(value: str, choices: tuple[str, ...], name: str) -> str:
    if value not in choices:
        raise ValueError(f"`{name}` must be one of {choices}, got {value!r}.")
    return value


def make_optimizer(
    name: str, groups: Iterable[dict], lr: float, betas: tuple[float, float], warmup_steps: int
) -> torch.optim.Optimizer:
    """The optimizer `name` over parameter groups (which carry their own weight_decay)."""
    check_choice(name, OPTIMIZERS, "optimizer")
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=betas)
    if name == "schedulefree_adamw":
        return _require("schedulefree", name).AdamWScheduleFree(groups, lr=lr, betas=betas, warmup_steps=warmup_steps)
    return _require("prodigyopt", name).Prodigy(groups, lr=lr, betas=betas, safeguard_warmup=True)


def warmup_cosine(step: int, warmup_steps: int, decay_steps: int, min_ratio: float) -> float:
    """LR multiplier: linear warm-up to 1, cosine decay to `min_ratio` at `decay_steps`, flat after."""
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    if step >= decay_steps:
        return min_ratio
    progress = (step - warmup_steps) / max(1, decay_steps - warmup_steps)
    return min_ratio + 0.5 * (1.0 - min_ratio) * (1.0 + math.cos(math.pi * progress))


def warmup_constant(step: int, warmup_steps: int) -> float:
    """LR multiplier: linear warm-up to 1, then constant."""
    return min(1.0, (step + 1) / (warmup_steps + 1))


def lightning_optimizers(module: torch.nn.Module, hp) -> torch.optim.Optimizer | dict:
    """configure_optimizers for a module whose hyperparameters `hp` name optimizer, lr, betas,
    weight_decay (matrices only), warmup_steps, schedule, decay_steps and min_lr_ratio."""
    decay = [p for p in module.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in module.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": hp.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    optimizer = make_optimizer(hp.optimizer, groups, hp.lr, tuple(hp.betas), hp.warmup_steps)
    if hp.optimizer == "schedulefree_adamw":
        return optimizer
    if hp.schedule == "cosine":
        multiplier = lambda s: warmup_cosine(s, hp.warmup_steps, hp.decay_steps, hp.min_lr_ratio)  # noqa: E731
    else:
        multiplier = lambda s: warmup_constant(s, hp.warmup_steps)  # noqa: E731
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
