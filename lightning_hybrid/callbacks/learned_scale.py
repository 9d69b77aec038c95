"""LearnedScale: one learned scale on the optimizer's accumulated updates (Mechanic's), as a Lightning callback."""

from __future__ import annotations

import math
from typing import Any

import lightning.pytorch as pl
import torch
from typing_extensions import override

from lightning_hybrid.callbacks._plan import HeldOutDraw, step_loss
from lightning_hybrid.callbacks._steps import (
    StepGuard,
    drop_gradients,
    refuse_sharded,
    report_summary,
    trainable,
)
from lightning_hybrid.control.heldout import GapAverage, difference
from lightning_hybrid.control.scale import Displacement, ScaleSettings, ScaleTuner
from lightning_hybrid.quant.linear import BitLinear
from lightning_hybrid.utils.checks import choice, in_open_unit, non_negative_int
from lightning_hybrid.utils.settings import strict

SCALES = ("one", "per_kind")
# The kinds of parameter that scales="per_kind" gives a scale each: the latent weights of quantized
# layers (they act through their signs and a threshold), the other matrices (embeddings, full-precision
# layers) and the vectors (norms, biases).
KINDS = ("quantized", "matrix", "vector")


class LearnedScale(pl.Callback):
    """Trains with theta = theta_0 + s * (sum of the optimizer's updates) and learns s online from
    d loss / d s (lightning_hybrid/control/scale.py): the optimizer, its LR schedule included, sets the
    direction and shape of the steps, and s their size, so the base LR matters only through its schedule.

    Args:
        divide_by_base_lr: sum each update divided by its param group's base LR (`initial_lr`, which LR
            schedulers set, else `lr`), so that s is the LR itself and the run is the same at any base
            LR; the schedule still shapes the steps. False: Mechanic's own convention (its scale
            multiplies the base LR's updates; mechanic-pytorch is run at lr 1.0).
        rescale_past: True (Mechanic's): theta = theta_0 + s * Delta, so a new s rescales every past
            update; False: each update is taken at the scale of its step, theta_t = theta_{t-1} + s_t * u_t
            (s learned from the same d loss / d s = g . Delta, which then is not the sensitivity of the
            weights actually reached). Measured on the binary char GPT (2000 steps, seed 0): False ends at
            val loss 2.58 against 1.86, its scale overshooting to 0.23 by step 460 and staying near 0.02-0.03.
        scales: "one" (Mechanic's: one scale for every parameter) or "per_kind" (one each for the
            KINDS: quantized layers' latent weights, other matrices, vectors; each learned from the
            hypergradient over its own parameters).
        heldout_every: every that many optimizer steps, one batch of the DataModule's
            `heldout_dataloader()` (data the run never trains on: lightning_hybrid's DataModules take
            heldout_fraction=...) gives the gradient at the step's weights, and the running average of
            (g_held_out - g_train) . Delta, where positive, is added to every step's hypergradient
            (lightning_hybrid/control/heldout.py): for data seen over several epochs, where the training
            batch's hypergradient keeps the scale above the one that generalizes. From the second epoch on:
            in the first every training batch is unseen, its gradient already held-out evidence. The cost:
            one forward and backward (training_step, logging muted) per heldout_every steps after the first
            epoch; none for a run shorter than an epoch. 0: off.
        heldout_memory: the discount of that running average, per held-out batch.
        heldout_one_sided: add only the average's positive part (held-out evidence may slow the scale,
            never speed it); False adds all of it (an ablation: on digits one seed of three then ends at
            val loss 0.090 against 0.024-0.034, benchmarks/README.md).
        **settings (lightning_hybrid.control.ScaleSettings): betas, s_init, decay, eps.

    Works through the optimizer's step post-hook, so after gradient clipping and with gradient
    accumulation (one scale step per optimizer step). Every rank holds the same parameters and the
    same averaged gradients under DDP, so every rank computes the same scale without a collective. A
    step whose gradients are not all finite is skipped (one check, the step's one host sync).

    Memory: two float32 copies of the trainable parameters (theta_0 and the sum of updates).
    """

    def __init__(
        self,
        divide_by_base_lr: bool = True,
        scales: str = "one",
        rescale_past: bool = True,
        heldout_every: int = 0,
        heldout_memory: float = 0.9,
        heldout_one_sided: bool = True,
        **settings: Any,
    ) -> None:
        flags = (("divide_by_base_lr", divide_by_base_lr), ("rescale_past", rescale_past))
        for name, value in (*flags, ("heldout_one_sided", heldout_one_sided)):
            if not isinstance(value, bool):
                raise ValueError(f"`{name}` must be True or False, got {value!r}.")
        self.divide_by_base_lr, self.rescale_past = divide_by_base_lr, rescale_past
        self.heldout_one_sided = heldout_one_sided
        self.scales = choice("scales", scales, SCALES)
        self.heldout_every = non_negative_int("heldout_every", heldout_every)
        self.heldout_memory = in_open_unit("heldout_memory", heldout_memory)
        if heldout_every and not rescale_past:
            raise ValueError("LearnedScale(heldout_every>0) corrects d loss / d s = g . Delta: use rescale_past=True.")
        self.gap: GapAverage | None = None
        self._draw: HeldOutDraw | None = None
        self.settings = strict(ScaleSettings, settings, "LearnedScale")
        self.tuner: ScaleTuner | None = None
        self.displacement: Displacement | None = None
        self.steps = self.skipped = 0
        self._params: list[torch.nn.Parameter] = []
        self.guard = StepGuard(self, "LearnedScale")  # fed no loss: it checks the gradients only
        self._skip = False
        self._restored: dict[str, torch.Tensor] | None = None
        self._handles: list[Any] = []

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            refuse_sharded(trainer, "LearnedScale")

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if len(trainer.optimizers) != 1:
            raise ValueError(
                "LearnedScale scales the updates of one optimizer; configure_optimizers returned "
                f"{len(trainer.optimizers)}. Put the parameters in one optimizer (param groups may differ)."
            )
        self._params = trainable(trainer.optimizers)
        self.guard.reset()
        device = self._params[0].device
        kinds = _kinds(pl_module, self._params) if self.scales == "per_kind" else None
        self.tuner = ScaleTuner(self.settings, device, count=len(KINDS) if kinds else 1)
        self.displacement = Displacement(self._params, self._units(trainer.optimizers[0]), kinds)
        if self.heldout_every:
            self._draw = HeldOutDraw(trainer, "LearnedScale", f"heldout_every={self.heldout_every}")
            self.gap = GapAverage(self.heldout_memory, device, self.tuner.count)
        if self._restored is not None:
            self.tuner.load_state_dict(self._restored)
            self.displacement.load_state_dict(self._restored)
            if self.gap is not None:
                self.gap.load_state_dict(self._restored)
            elif "heldout.total" in self._restored:
                raise ValueError(
                    "the checkpoint's LearnedScale corrected its hypergradient with held-out batches; resume it "
                    "with the same heldout_every (this one has heldout_every=0)."
                )
            self._restored = None
        else:  # a fresh run starts at theta_0: scale 0 until the first hypergradient
            self.displacement.place(self._params, self.tuner.scale)
        self._handles = [trainer.optimizers[0].register_step_post_hook(self._after_step)]
        if not self.rescale_past:
            self._handles.append(trainer.optimizers[0].register_step_pre_hook(self._before_step))

    def _units(self, optimizer: torch.optim.Optimizer) -> list[float] | None:
        if not self.divide_by_base_lr:
            return None
        units = []
        for group in optimizer.param_groups:
            base = float(group.get("initial_lr", group["lr"]))
            if not base > 0:
                raise ValueError(
                    f"LearnedScale(divide_by_base_lr=True) divides by each param group's base LR; one group has "
                    f"{base}. Give every group a positive LR or use divide_by_base_lr=False."
                )
            units += [base] * sum(p.requires_grad for p in group["params"])
        return units

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Held-out batches are read from the second epoch on: a run that never gets there needs none (the
        # text DataModule then holds out nothing), one that does is refused now rather than an epoch later.
        if self._draw is not None and self._draw.empty and _goes_past_first_epoch(trainer):
            self._draw.refuse_empty()

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    @override
    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        self._skip = self.guard.check(trainer, self._params).reason is not None
        if self._skip:  # the guard reported it
            drop_gradients(self._params)
            self.skipped += 1
        elif self.heldout_every and trainer.current_epoch > 0 and self.steps % self.heldout_every == 0:
            self._observe_heldout(trainer, pl_module)

    def _observe_heldout(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """One held-out batch's gradient at these weights (before clipping, as the training gradient here is)."""
        params = self._params
        batch = pl_module.transfer_batch_to_device(self._draw(self.gap.observed), params[0].device, 0)
        with torch.enable_grad(), trainer.precision_plugin.forward_context():
            loss = step_loss(pl_module, batch)
        heldout = torch.autograd.grad(loss, params, allow_unused=True)
        diff = difference(list(heldout), [p.grad for p in params])
        self.gap.observe(self.displacement.hypergradient(params, diff, self.tuner.scale, decay=0.0))

    def heldout_correction(self) -> torch.Tensor:
        """What the held-out average adds to d loss / d s: its positive part (heldout_one_sided), or all of it."""
        return self.gap.correction if self.heldout_one_sided else self.gap.value

    def _before_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if not self._skip:
            self.displacement.anchor(self._params)

    def _after_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if self._skip:  # the optimizer had no gradients and left the weights alone
            return
        tuner, displacement = self.tuner, self.displacement
        before = tuner.scale
        h = displacement.hypergradient(self._params, [p.grad for p in self._params], before, self.settings.decay)
        if self.gap is not None:
            h = h + self.heldout_correction()
        if self.rescale_past:
            displacement.accumulate(self._params, before)
            tuner.update(h)
            displacement.place(self._params, tuner.scale)
        else:
            displacement.step_from_anchor(self._params, before)
            tuner.update(h)
        self.steps += 1

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self.tuner.count == 1:
            pl_module.log("scale/s", self.tuner.scale, on_step=True, on_epoch=False)
        else:
            for kind, scale in zip(KINDS, self.tuner.scale):
                pl_module.log(f"scale/{kind}", scale, on_step=True, on_epoch=False)

    def summary(self) -> dict[str, float | int]:
        summary: dict[str, float | int] = {"steps": self.steps, "skipped_steps": self.skipped}
        if self.gap is not None:
            summary["heldout_batches"] = self.gap.observed
        if self.tuner is None or self.tuner.count == 1:
            scale = float(self.tuner.scale) if self.tuner is not None else 0.0
            return {**summary, "final_scale": float(f"{scale:.4g}")}
        return {**summary, **{f"final_scale_{k}": float(f"{float(v):.4g}") for k, v in zip(KINDS, self.tuner.scale)}}

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        report_summary(trainer, "LearnedScale", "scale_summary", self.summary())

    @override
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"steps": self.steps, "skipped": self.skipped}
        if self.tuner is not None:
            state.update(self.tuner.state_dict())
            state.update(self.displacement.state_dict())
        if self.gap is not None:
            state.update(self.gap.state_dict())
        return state

    @override
    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps, self.skipped = int(state.get("steps", 0)), int(state.get("skipped", 0))
        tensors = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
        self._restored = tensors or None  # placed on the parameters' devices at fit start


def _goes_past_first_epoch(trainer: pl.Trainer) -> bool:
    batches = trainer.num_training_batches
    if trainer.max_steps is None or trainer.max_steps < 0 or not math.isfinite(batches):
        return True
    return trainer.max_steps * trainer.accumulate_grad_batches > batches


def _kinds(module: torch.nn.Module, params: list[torch.nn.Parameter]) -> list[int]:
    """Each parameter's index in KINDS (a parameter tied into a quantized layer counts as quantized)."""
    quantized = {id(m.weight) for m in module.modules() if isinstance(m, BitLinear)}
    return [0 if id(p) in quantized else 1 if p.ndim >= 2 else 2 for p in params]
