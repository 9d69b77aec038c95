"""GradientCompression: a DDP communication hook chosen by name, with the bytes it sends counted."""

from __future__ import annotations

from collections.abc import Callable

import lightning.pytorch as pl
import torch
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.utilities import rank_zero_warn
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.nn.parallel import DistributedDataParallel
from typing_extensions import override

from lightning_hybrid.distributed import TernGradState, terngrad_hook
from lightning_hybrid.utils.checks import choice

METHODS = ("terngrad", "fp16", "none")


class _Counted:
    """State of a torch default hook (all-reduce of the bucket in fp32 or fp16) that counts its bytes."""

    def __init__(self, hook: Callable, bytes_per_element: int) -> None:
        self.hook, self.bytes_per_element, self.bytes_sent = hook, bytes_per_element, 0


def _counted_hook(state: _Counted, bucket):
    state.bytes_sent += bucket.buffer().numel() * state.bytes_per_element
    return state.hook(None, bucket)


class GradientCompression(pl.Callback):
    """Registers a gradient communication hook on the DDP model (Lightning's own `ddp_comm_hook` setting
    registers only on CUDA; this works on CPU processes with gloo too) and logs the bytes it sends.

    method: "terngrad" (ternary codes with scales shared across ranks, gradients clipped to clip_sigma
    standard deviations, error feedback; lightning_hybrid/distributed/terngrad.py), "fp16" (torch's
    fp16_compress_hook) or "none" (torch's fp32 all-reduce, DDP's default, counted).
    wire (terngrad): "int8" sums the codes in an int8 all-reduce; "2bit" all-gathers them packed four to
    a byte, fewer bytes on few ranks (see terngrad.py).
    scale_per (terngrad): "bucket" (one shared scale a DDP bucket) or "parameter" (one a parameter, the
    paper's layer-wise scales; measured worse, see terngrad.py).
    Logs `grad_comm/bytes_per_step`, the bytes this rank puts into collectives.
    """

    def __init__(
        self,
        method: str = "terngrad",
        seed: int = 0,
        error_feedback: bool = True,
        clip_sigma: float | None = 2.5,
        wire: str = "int8",
        scale_per: str = "bucket",
    ) -> None:
        self.method = choice("method", method, METHODS)
        self.seed, self.error_feedback, self.clip_sigma = seed, error_feedback, clip_sigma
        self.wire, self.scale_per = wire, scale_per
        self._new_state()  # checks the settings now, not at fit start
        self.state = None
        self._last_bytes = self._steps = 0
        self._restored: dict | None = None

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit" and not isinstance(trainer.strategy, DDPStrategy):
            raise ValueError(
                "GradientCompression needs a DDP strategy (trainer=ddp, strategy='ddp'), "
                f"got {type(trainer.strategy).__name__}."
            )

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        model = trainer.strategy.model
        if not isinstance(model, DistributedDataParallel):
            raise RuntimeError(
                f"GradientCompression found no DistributedDataParallel model, got {type(model).__name__}."
            )
        if self.method == "terngrad":
            self.state, hook = self._new_state(), terngrad_hook
        else:
            base = default_hooks.fp16_compress_hook if self.method == "fp16" else default_hooks.allreduce_hook
            self.state, hook = _Counted(base, 2 if self.method == "fp16" else 4), _counted_hook
        model.register_comm_hook(self.state, hook)
        if self._restored is not None and isinstance(self.state, TernGradState):
            self._restore_terngrad(trainer, pl_module.device)

    def _new_state(self) -> TernGradState:
        return TernGradState(self.seed, self.error_feedback, self.clip_sigma, wire=self.wire, scale_per=self.scale_per)

    # TernGrad's memory is per rank: each rank's error-feedback residuals and random stream. A checkpoint
    # holds every rank's (gathered when it is written, on every rank at once), and each rank takes its own
    # back on resume, so a resumed run continues the same compression error it stopped with.
    @override
    def state_dict(self) -> dict:
        return {"method": self.method}

    @override
    def load_state_dict(self, state_dict: dict) -> None:
        saved = state_dict.get("method", self.method)
        if saved != self.method:
            raise ValueError(
                f"The checkpoint was trained with GradientCompression(method={saved!r}), "
                f"this callback has {self.method!r}."
            )
        self._restored = dict(state_dict)

    @override
    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        if not isinstance(self.state, TernGradState):
            return
        gathered: dict = {"world_size": trainer.world_size}
        for index in sorted(self.state.residuals):  # the same buckets on every rank
            gathered[f"residual.{index}"] = trainer.strategy.all_gather(self.state.residuals[index]).cpu()
        for device, generator in self.state._generators.items():
            gathered[f"generator.{device.type}"] = trainer.strategy.all_gather(generator.get_state().to(device)).cpu()
        checkpoint.setdefault("callbacks", {}).setdefault(self.state_key, {}).update(gathered)

    def _restore_terngrad(self, trainer: pl.Trainer, device: torch.device) -> None:
        saved, self._restored = self._restored, None
        if saved.get("world_size", trainer.world_size) != trainer.world_size:
            rank_zero_warn(
                f"GradientCompression: the checkpoint has TernGrad residuals of {saved['world_size']} ranks, "
                f"this run has {trainer.world_size}; they restart at zero."
            )
            return
        rank = trainer.global_rank
        for key, value in saved.items():
            if key.startswith("residual."):
                self.state.residuals[int(key.removeprefix("residual."))] = value[rank].to(device, copy=True)
            elif key == f"generator.{device.type}":
                self.state.generator(device).set_state(
                    value[rank].clone()
                )  # own storage: set_state ignores view offsets

    @override
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        sent = self.state.bytes_sent - self._last_bytes
        self._last_bytes, self._steps = self.state.bytes_sent, self._steps + 1
        pl_module.log("grad_comm/bytes_per_step", torch.tensor(float(sent)), on_step=True, on_epoch=False)

    def summary(self) -> dict:
        """For the main job's summary: the method and this rank's mean bytes sent a step."""
        per_step = self.state.bytes_sent / self._steps if self.state is not None and self._steps else None
        return {"method": self.method, "bytes_per_step": per_step}
