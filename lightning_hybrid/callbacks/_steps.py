"""What the hybrid-optimizer callbacks share: the loss of an optimizer step, the non-finite check, the
strategy check, and an LR multiplier that survives any LR scheduler."""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch
from lightning.pytorch.strategies import DeepSpeedStrategy, FSDPStrategy, ModelParallelStrategy
from lightning.pytorch.utilities import rank_zero_info

# Strategies that shard parameters: a norm or dot product over one rank's shard is not the model's.
SHARDED_STRATEGIES = (FSDPStrategy, DeepSpeedStrategy, ModelParallelStrategy)


def refuse_sharded(trainer: pl.Trainer, who: str) -> None:
    if isinstance(trainer.strategy, SHARDED_STRATEGIES):
        name = type(trainer.strategy).__name__
        raise ValueError(
            f"{who} needs every rank to hold all parameters (it measures norms and dot products over them), "
            f"but the strategy is {name}, which shards them. Use strategy='ddp' or drop {who}."
        )


def report_summary(trainer: pl.Trainer, name: str, prefix: str, summary: dict[str, float | int]) -> None:
    """Log a callback's end-of-fit summary to every logger (as prefix/key) and print it on rank 0."""
    for logger in trainer.loggers:
        logger.log_metrics({f"{prefix}/{k}": float(v) for k, v in summary.items()}, step=trainer.global_step)
    rank_zero_info(f"{name}: " + ", ".join(f"{k} {v}" for k, v in summary.items()))


def trainable(optimizers: list[torch.optim.Optimizer]) -> list[torch.nn.Parameter]:
    return [p for o in optimizers for g in o.param_groups for p in g["params"] if p.requires_grad]


class StepLoss:
    """Sums the (already 1/accumulation-scaled) losses handed to backward during one optimizer step."""

    def __init__(self) -> None:
        self.total, self.count = 0.0, 0

    def add(self, loss: torch.Tensor) -> None:
        self.total += float(loss.detach())
        self.count += 1

    def take(self, trainer: pl.Trainer) -> float | None:
        """The step's loss, averaged over ranks (the same number on every rank), or None when no loss
        went through Lightning's backward (manual optimization calling loss.backward()); resets the sum."""
        if not self.count:
            return None
        value = torch.tensor(self.total, dtype=torch.float64)
        self.total, self.count = 0.0, 0
        return float(trainer.strategy.reduce(value.to(trainer.strategy.root_device), reduce_op="mean"))


def nonfinite_reason(trainer: pl.Trainer, loss: float | None, params: list[torch.nn.Parameter]) -> str | None:
    """Why this step must not touch the weights (agreed by all ranks), or None. An unknown loss (None)
    is not a reason: the gradients are still checked."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return "no gradients (an earlier callback dropped a non-finite step)"
    grads_ok = bool(torch.stack([torch.isfinite(g).all() for g in grads]).all())
    loss_ok = loss is None or math.isfinite(loss)
    if trainer.strategy.reduce_boolean_decision(loss_ok and grads_ok, all=True):
        return None
    return f"non-finite loss ({loss})" if not loss_ok else "non-finite gradient"


def drop_gradients(params: list[torch.nn.Parameter]) -> None:
    # torch optimizers skip parameters whose .grad is None: no update, no weight decay, no state change.
    for p in params:
        p.grad = None


def grad_norm(params: list[torch.nn.Parameter]) -> float:
    return math.sqrt(sum(float(p.grad.detach().float().square().sum()) for p in params if p.grad is not None))


class ScaledLR:
    """Keeps param_group["lr"] = scheduled LR x multiplier on every group of every optimizer.

    The scheduled LR is what the user's schedulers set, and they must see it unscaled: chainable ones
    (CosineAnnealingLR, ExponentialLR) compute the next LR from the current one. Lightning steps
    "step"/"epoch" schedulers after the optimizer step and before on_train_batch_end, so the callback
    calls unscale() from the optimizer's post-step hook and rescale() in on_train_batch_end; in between
    the group holds the scheduled LR. A change made while the group holds the scaled LR (a
    ReduceLROnPlateau stepping after on_train_batch_end, a user) is detected in apply() and kept.
    With replace=True the scheduled LR stays at the base LR whatever the schedulers do.
    """

    def __init__(self) -> None:
        self.scheduled: list[list[float]] = []  # per optimizer, per group
        self.multiplier = 1.0
        self.replace = False
        self._written: list[list[float]] = []

    def attach(self, optimizers: list[torch.optim.Optimizer], replace: bool) -> None:
        self.replace = replace
        if [len(s) for s in self.scheduled] != [len(o.param_groups) for o in optimizers]:  # fresh run
            self.scheduled = [
                [float(g.get("initial_lr", g["lr"]) if replace else g["lr"]) for g in o.param_groups]
                for o in optimizers
            ]
        self._write(optimizers, self.multiplier)

    def _write(self, optimizers: list[torch.optim.Optimizer], multiplier: float) -> None:
        self._written = []
        for o, lrs in zip(optimizers, self.scheduled):
            for g, lr in zip(o.param_groups, lrs):
                g["lr"] = lr * multiplier
            self._written.append([g["lr"] for g in o.param_groups])

    def apply(self, optimizers: list[torch.optim.Optimizer], multiplier: float) -> None:
        """Scale by a new multiplier, keeping any change made to the scaled LRs since they were written."""
        if not self.replace:
            for i, o in enumerate(optimizers):
                for j, g in enumerate(o.param_groups):
                    if g["lr"] != self._written[i][j]:
                        self.scheduled[i][j] = g["lr"] / self.multiplier
        self.multiplier = multiplier
        self._write(optimizers, multiplier)

    def unscale(self, optimizer: torch.optim.Optimizer, index: int) -> None:
        for g, lr in zip(optimizer.param_groups, self.scheduled[index]):
            g["lr"] = lr

    def rescale(self, optimizers: list[torch.optim.Optimizer]) -> None:
        if not self.replace:
            self.scheduled = [[float(g["lr"]) for g in o.param_groups] for o in optimizers]
        self._write(optimizers, self.multiplier)

    def state_dict(self) -> dict[str, float]:
        state = {f"lr.{i}.{j}": lr for i, lrs in enumerate(self.scheduled) for j, lr in enumerate(lrs)}
        state["lr.multiplier"] = self.multiplier
        return state

    def load_state_dict(self, state: dict) -> None:
        keys = [k.split(".") for k in state if k.startswith("lr.") and k != "lr.multiplier"]
        n_opt = 1 + max((int(k[1]) for k in keys), default=-1)
        self.scheduled = [
            [float(state[f"lr.{i}.{j}"]) for j in range(1 + max(int(k[2]) for k in keys if int(k[1]) == i))]
            for i in range(n_opt)
        ]
        self.multiplier = float(state.get("lr.multiplier", 1.0))
