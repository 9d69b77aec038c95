"""What the hybrid-optimizer callbacks share: the loss of an optimizer step, the non-finite check, the
strategy check, and an LR multiplier that survives any LR scheduler (control/lr_scale.py; importable from here too)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import lightning.pytorch as pl
import torch
from lightning.pytorch.strategies import DeepSpeedStrategy, FSDPStrategy, ModelParallelStrategy
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from lightning_hybrid.control.lr_scale import ScaledLR  # noqa: F401  (its former home)

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
    """Sums the (already 1/accumulation-scaled) losses handed to backward during one optimizer step, on
    their device (no host sync)."""

    def __init__(self) -> None:
        self.losses: list[torch.Tensor] = []

    def add(self, loss: torch.Tensor) -> None:
        self.losses.append(loss.detach())

    def total(self, device: torch.device) -> tuple[torch.Tensor, bool]:
        """The sum (float64, on `device`) and whether any loss was added; resets the sum."""
        if not self.losses:
            return torch.zeros((), dtype=torch.float64, device=device), False
        total = torch.stack([x.to(device, torch.float64) for x in self.losses]).sum()
        self.losses = []
        return total, True


@dataclass(frozen=True)
class Verdict:
    loss: float | None  # the step's loss averaged over ranks; None when no loss went through backward
    reason: str | None  # why the step must not touch the weights (the same on every rank), or None
    extra: list[float]  # the caller's extra values, fetched in the same transfer (empty for a repeat call)


class StepGuard:
    """Decides once per optimizer step, for every callback that shares it, whether the step may touch
    the weights: one collective (the loss sum and a non-finite flag, summed over ranks) and one host
    transfer, which also carries any values the first caller asks for. The callbacks sharing a guard
    all receive the same verdict, and a skipped step is reported once, naming them.

    A guard is fed the losses by one callback (`feeder`): the others ignore their own backward hooks.
    """

    def __init__(self, feeder: object, name: str) -> None:
        self.feeder = feeder
        self.names = [name]
        self._loss = StepLoss()
        self._step: int | None = None
        self._verdict: Verdict | None = None

    def share_with(self, name: str) -> StepGuard:
        if name not in self.names:
            self.names.append(name)
        return self

    def add(self, loss: torch.Tensor, source: object) -> None:
        if source is self.feeder:
            self._loss.add(loss)

    def reset(self) -> None:
        """Forget the last verdict (at fit start: a resumed run repeats step numbers)."""
        self._step, self._verdict, self._loss.losses = None, None, []

    def check(
        self, trainer: pl.Trainer, params: list[torch.nn.Parameter], extra: torch.Tensor | None = None
    ) -> Verdict:
        """The verdict on this optimizer step; `extra` (a 1-D tensor on the parameters' device, the
        same on every rank) comes back as floats in verdict.extra when this call is the step's first."""
        if self._step == trainer.global_step and self._verdict is not None:
            return Verdict(self._verdict.loss, self._verdict.reason, [])
        self._step = trainer.global_step
        self._verdict = self._decide(trainer, params, extra)
        if self._verdict.reason is not None:
            rank_zero_warn(
                f"{', '.join(self.names)}: step {trainer.global_step} skipped: {self._verdict.reason}; "
                "the weights are unchanged."
            )
        return self._verdict

    def _decide(self, trainer: pl.Trainer, params: list[torch.nn.Parameter], extra: torch.Tensor | None) -> Verdict:
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            self._loss.losses = []
            return Verdict(None, "no gradients (an earlier callback dropped a non-finite step)", [])
        device = grads[0].device
        loss_sum, counted = self._loss.total(device)
        # One foreach norm pass (a NaN or inf anywhere makes its tensor's norm non-finite) rather than an
        # isfinite pass per tensor: 0.3-0.4 ms against 1.8-2.7 ms a step on the char GPT's 53 tensors
        # (benchmarks/step_overhead.py).
        # A finite gradient whose norm overflows its dtype (above ~1.8e19 in float32) counts as non-finite.
        norms = torch._foreach_norm(grads)
        bad = ~torch.isfinite(torch.stack([n.float() for n in norms]).sum())
        agreed = trainer.strategy.reduce(torch.stack([loss_sum, bad.double()]), reduce_op="sum")
        tail = [] if extra is None else [extra.to(device, torch.float64)]
        values = torch.cat([agreed.reshape(-1), *tail]).tolist()  # the one host transfer
        loss = values[0] / trainer.world_size if counted else None
        if loss is not None and not math.isfinite(loss):
            reason: str | None = f"non-finite loss ({loss})"
        else:
            reason = "non-finite gradient" if values[1] > 0 else None
        return Verdict(loss, reason, values[2:])


def drop_gradients(params: list[torch.nn.Parameter]) -> None:
    # torch optimizers skip parameters whose .grad is None: no update, no weight decay, no state change.
    for p in params:
        p.grad = None


def grad_square_norms(params: list[torch.nn.Parameter]) -> torch.Tensor:
    """Each gradient's squared norm (float32, on the gradients' device, no host sync; 0 without one)."""
    device = params[0].device
    return torch.stack(
        [
            p.grad.detach().float().square().sum() if p.grad is not None else torch.zeros((), device=device)
            for p in params
        ]
    )
