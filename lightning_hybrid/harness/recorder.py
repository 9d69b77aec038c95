"""RunRecorder: per-step loss, LR, step time and memory, and the validation curve, of one run."""

from __future__ import annotations

import math
import os
import statistics
import time
from typing import Any

import lightning.pytorch as pl
import torch
from typing_extensions import override

from lightning_hybrid.harness.memory import held_bytes, storages_of
from lightning_hybrid.utils.checks import positive_int

# Callbacks every method of a workload has the same of; `callback_state_bytes` counts the others.
_COMMON_CALLBACKS = ("lightning.pytorch.",)


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite; the run stops and is recorded as failed."""


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return float("nan")


class RunRecorder(pl.Callback):
    """Records every `log_every` steps the training loss, the first group's LR and the memory in use
    (CUDA peak allocated on GPU; the process's resident set on CPU, sampled at those steps), the wall
    time of every training step, and the val loss at every validation. Stops the run on a non-finite
    loss.

    At the end of training it counts the bytes of tensor state the optimizers hold and the bytes the
    run's own callbacks hold (those not from Lightning, this recorder excluded) beyond the model's
    parameters and gradients: the memory a method adds. A TrustRegion's pre-step snapshot lives only
    during the step and is not in it (its docstring gives its size)."""

    def __init__(self, log_every: int = 10) -> None:
        self.log_every = positive_int("log_every", log_every)
        self.curve: list[tuple[int, float, float]] = []  # (step, train loss, lr)
        self.val: list[tuple[int, float]] = []
        self.step_times: list[float] = []
        self.peak_mem_mb = 0.0
        self.optimizer_state_bytes: int | None = None
        self.callback_state_bytes: int | None = None
        self._t0 = 0.0

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if torch.cuda.is_available() and pl_module.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(pl_module.device)

    @override
    def on_train_batch_start(self, *args: Any) -> None:
        self._t0 = time.perf_counter()

    @override
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx) -> None:
        self.step_times.append(time.perf_counter() - self._t0)
        loss = float(outputs["loss"]) if isinstance(outputs, dict) else float(outputs)
        if not math.isfinite(loss):
            raise NonFiniteLossError(f"non-finite training loss ({loss}) at step {trainer.global_step}")
        if trainer.global_step % self.log_every == 0:
            lr = trainer.optimizers[0].param_groups[0]["lr"]
            self.curve.append((trainer.global_step, loss, float(lr)))
            self.peak_mem_mb = max(self.peak_mem_mb, self._memory_mb(pl_module))

    @override
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit" or "val_loss" not in trainer.callback_metrics:
            return
        self.val.append((trainer.global_step, float(trainer.callback_metrics["val_loss"])))

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        model = storages_of(pl_module.parameters())
        self.optimizer_state_bytes = sum(held_bytes(o.state, model) for o in trainer.optimizers)
        own = [c for c in trainer.callbacks if c is not self and not type(c).__module__.startswith(_COMMON_CALLBACKS)]
        # the data a callback reads (LearnedScale's held-out batches) is not state it keeps
        skip = (pl.Trainer, pl.LightningModule, pl.LightningDataModule, torch.utils.data.Dataset)
        self.callback_state_bytes = held_bytes(own, model, skip)  # one walk: a tensor two callbacks share counts once

    @staticmethod
    def _memory_mb(pl_module: pl.LightningModule) -> float:
        if pl_module.device.type == "cuda":
            return torch.cuda.max_memory_allocated(pl_module.device) / 2**20
        return _rss_mb()

    def as_dict(self) -> dict[str, Any]:
        steady = self.step_times[10:] or self.step_times  # the first steps include warm-up work
        return {
            "curve": self.curve,
            "val": self.val,
            "median_step_s": statistics.median(steady) if steady else None,
            "peak_mem_mb": round(self.peak_mem_mb, 1),
            "optimizer_state_bytes": self.optimizer_state_bytes,
            "callback_state_bytes": self.callback_state_bytes,
        }
