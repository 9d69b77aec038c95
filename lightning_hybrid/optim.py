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
