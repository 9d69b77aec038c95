"""ScaledLR: keeps every param group's LR at (scheduled LR) x multiplier, whatever the LR schedulers do."""

from __future__ import annotations

from collections.abc import Sequence

import torch


class ScaledLR:
    """Keeps param_group["lr"] = scheduled LR x multiplier on every group of every optimizer.

    The scheduled LR is what the user's schedulers set, and they must see it unscaled: chainable ones
    (CosineAnnealingLR, ExponentialLR) compute the next LR from the current one. A training loop steps
    its schedulers after the optimizer step, so the owner calls unscale() right after the optimizer
    step (from its step post-hook) and rescale() once the schedulers have stepped; in between, the group
    holds the scheduled LR. A change made while the group holds the scaled LR (a ReduceLROnPlateau
    stepping later, a user) is detected in apply() and kept. With replace=True the scheduled LR stays at
    the base LR (`initial_lr`, else `lr`) whatever the schedulers do.

    State (state_dict): "lr.multiplier", "lr.optimizers" (their number), "lr.{i}.groups" (groups of
    optimizer i) and "lr.{i}.{j}" (the scheduled LR of group j of optimizer i).
    """

    def __init__(self) -> None:
        self.scheduled: list[list[float]] = []  # per optimizer, per group
        self.multiplier = 1.0
        self.replace = False
        self._written: list[list[float]] = []

    def attach(self, optimizers: Sequence[torch.optim.Optimizer], replace: bool) -> None:
        """Start scaling these optimizers (a restored state is kept if it has their groups)."""
        self.replace = replace
        if [len(s) for s in self.scheduled] != [len(o.param_groups) for o in optimizers]:  # a fresh run
            self.scheduled = [
                [float(g.get("initial_lr", g["lr"]) if replace else g["lr"]) for g in o.param_groups]
                for o in optimizers
            ]
        self._write(optimizers, self.multiplier)

    def _write(self, optimizers: Sequence[torch.optim.Optimizer], multiplier: float) -> None:
        self._written = []
        for o, lrs in zip(optimizers, self.scheduled):
            for g, lr in zip(o.param_groups, lrs):
                g["lr"] = lr * multiplier
            self._written.append([g["lr"] for g in o.param_groups])

    def apply(self, optimizers: Sequence[torch.optim.Optimizer], multiplier: float) -> None:
        """Scale by a new multiplier, keeping any change made to the scaled LRs since they were written."""
        if not self.replace:
            for i, o in enumerate(optimizers):
                for j, g in enumerate(o.param_groups):
                    if g["lr"] != self._written[i][j]:
                        self.scheduled[i][j] = g["lr"] / self.multiplier
        self.multiplier = multiplier
        self._write(optimizers, multiplier)

    def unscale(self, optimizer: torch.optim.Optimizer, index: int) -> None:
        """Hand optimizer `index` back its scheduled LRs (for the schedulers to step on)."""
        for g, lr in zip(optimizer.param_groups, self.scheduled[index]):
            g["lr"] = lr

    def rescale(self, optimizers: Sequence[torch.optim.Optimizer]) -> None:
        """Take the LRs the schedulers set as the scheduled ones and scale them again."""
        if not self.replace:
            self.scheduled = [[float(g["lr"]) for g in o.param_groups] for o in optimizers]
        self._write(optimizers, self.multiplier)

    def state_dict(self) -> dict[str, float | int]:
        state: dict[str, float | int] = {"lr.multiplier": self.multiplier, "lr.optimizers": len(self.scheduled)}
        for i, lrs in enumerate(self.scheduled):
            state[f"lr.{i}.groups"] = len(lrs)
            state.update({f"lr.{i}.{j}": lr for j, lr in enumerate(lrs)})
        return state

    def load_state_dict(self, state: dict) -> None:
        counts = _group_counts(state)
        self.scheduled = [[float(state[f"lr.{i}.{j}"]) for j in range(n)] for i, n in enumerate(counts)]
        self.multiplier = float(state.get("lr.multiplier", 1.0))


def _group_counts(state: dict) -> list[int]:
    """Groups per optimizer: stored since the counts were added; read off the keys of older states."""
    if "lr.optimizers" in state:
        return [int(state[f"lr.{i}.groups"]) for i in range(int(state["lr.optimizers"]))]
    indices = [k.split(".")[1:] for k in state if k.startswith("lr.") and k != "lr.multiplier"]
    counts: dict[int, int] = {}
    for i, j in ((int(a), int(b)) for a, b in indices):
        counts[i] = max(counts.get(i, 0), j + 1)
    return [counts.get(i, 0) for i in range(1 + max(counts, default=-1))]
