"""Optimizers and LR schedules by name, so configs can pick the baselines a user would reach for.

  adamw               torch.optim.AdamW
  schedulefree_adamw  schedulefree.AdamWScheduleFree (Defazio et al. 2024); warm-up is its own, and it
                      needs optimizer.train() / .eval() around training and evaluation (ScheduleFreeMode)
  prodigy             prodigyopt.Prodigy (Mishchenko & Defazio 2023); lr is a multiplier of its own
                      step-size estimate, 1.0 untuned
  mechanic            mechanic_pytorch.mechanize(torch.optim.AdamW) (Cutkosky et al. 2023): learns one
                      scale for AdamW's updates online; lr is AdamW's, 1.0 as its documentation sets it
The last three come with the `bench` extra and are imported only when asked for.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from lightning_hybrid.utils.checks import choice, integer, non_negative, non_negative_int, number, positive

OPTIMIZERS = ("adamw", "schedulefree_adamw", "prodigy", "mechanic")
SCHEDULES = ("cosine", "constant")


@dataclass
class OptimizerSettings:
    """What `lightning_optimizers` builds: the optimizer `optimizer` (one of OPTIMIZERS) at base LR `lr`,
    decoupled weight decay on matrices only, and the LR multiplier `schedule`: "cosine" (linear warm-up
    over `warmup_steps`, cosine decay to lr * min_lr_ratio at `decay_steps`, flat after) or "constant"
    (linear warm-up, then flat). schedulefree_adamw warms up by itself and gets no scheduler."""

    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.99)
    warmup_steps: int = 100
    schedule: str = "cosine"
    decay_steps: int = 2000  # the Trainer's max_steps, which is -1 in epoch-based runs
    min_lr_ratio: float = 0.1

    def __post_init__(self) -> None:
        choice("optimizer", self.optimizer, OPTIMIZERS)
        choice("schedule", self.schedule, SCHEDULES)
        positive("lr", self.lr)
        non_negative("weight_decay", self.weight_decay)
        betas = tuple(self.betas) if isinstance(self.betas, Iterable) else ()
        if len(betas) != 2:
            raise ValueError(f"`betas` must be two numbers in [0, 1), got {self.betas!r}.")
        self.betas = tuple(number("betas", b, 0, 1, open_high=True) for b in betas)  # type: ignore[assignment]
        non_negative_int("warmup_steps", self.warmup_steps)
        integer("decay_steps", self.decay_steps)
        number("min_lr_ratio", self.min_lr_ratio, 0, 1)


def _require(module: str, name: str):
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"optimizer={name!r} needs the {module!r} package: pip install 'lightning_hybrid[bench]'"
        ) from err


def make_optimizer(
    name: str, groups: Iterable[dict], lr: float, betas: tuple[float, float], warmup_steps: int
) -> torch.optim.Optimizer:
    """The optimizer `name` over parameter groups (which carry their own weight_decay)."""
    choice("optimizer", name, OPTIMIZERS)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=betas)
    if name == "schedulefree_adamw":
        return _require("schedulefree", name).AdamWScheduleFree(groups, lr=lr, betas=betas, warmup_steps=warmup_steps)
    if name == "mechanic":
        return _require("mechanic_pytorch", name).mechanize(torch.optim.AdamW)(groups, lr=lr, betas=betas)
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


def lightning_optimizers(module: torch.nn.Module, hp: OptimizerSettings) -> torch.optim.Optimizer | dict:
    """configure_optimizers for `module` with the settings `hp`."""
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
