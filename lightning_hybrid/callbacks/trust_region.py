"""TrustRegion: bound every optimizer step, ||dtheta|| <= mu_t, and adapt mu_t, as a Lightning callback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_warn
from typing_extensions import override

from lightning_hybrid.callbacks._steps import (
    StepGuard,
    drop_gradients,
    grad_square_norms,
    refuse_sharded,
    report_summary,
    trainable,
)
from lightning_hybrid.control.trust_region import TrustRegionCore, TrustRegionSettings
from lightning_hybrid.utils.settings import strict


def _unit_scale() -> float:
    return 1.0


class TrustRegion(pl.Callback):
    """Projects each step of the (single) optimizer into a trust region and adapts its radius with the
    ratio test; the maths, defaults and their reasons are in lightning_hybrid/control/trust_region.py.

    Args:
        initial_radius: mu_0 (absolute for scope="global", relative to each tensor's norm for "tensor");
            None calibrates it: no bound for the first `calibration_steps` steps, then twice the largest of them.
        scope: "global" (one bound on the whole step) or "tensor" (a relative bound per tensor).
        **settings: the other fields of TrustRegionSettings: grow, shrink, spike_shrink, good_ratio,
            bad_ratio, spike_zscore, window, calibration_steps, min_radius, max_radius, max_growth.

    Works with any torch optimizer through its step pre/post hooks (Lightning has no after-step hook),
    so with gradient accumulation (one bound per optimizer step) and gradient clipping (the bound applies
    to the clipped step; the predicted decrease uses the unclipped gradient).

    Attributes another callback may use (an AuxLRController does, and owns that link):
        radius_scale: a callable returning the factor applied to mu_t at each step (default 1).
        last_cut_fraction: the share of the last step's squared norm that the bound removed.
        guard: the StepGuard that decides whether a step may touch the weights; a callback that makes
            the same decision may put its own here, so that the step is checked once.

    Host syncs a step: the guard's one and the projection's one.

    Memory: one copy of the trainable parameters (the pre-step snapshot, in their dtype) plus one float32
    temporary the size of the largest parameter tensor.
    """

    def __init__(self, initial_radius: float | None = None, scope: str = "global", **settings: Any) -> None:
        fields = {"initial_radius": initial_radius, "scope": scope, **settings}
        self.core = TrustRegionCore(strict(TrustRegionSettings, fields, "TrustRegion"))
        self.radius_scale: Callable[[], float] = _unit_scale
        self.guard = StepGuard(self, "TrustRegion")
        self._handles: list[Any] = []
        self._params: list[torch.nn.Parameter] = []
        self._skip = False
        self._unclipped_sq: torch.Tensor | None = None
        self.last_outcome = None

    @property
    def last_cut_fraction(self) -> float:
        return self.core.last_cut_fraction

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            refuse_sharded(trainer, "TrustRegion")

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if len(trainer.optimizers) != 1:
            raise ValueError(
                "TrustRegion bounds the step of one optimizer; configure_optimizers returned "
                f"{len(trainer.optimizers)}. Put the parameters in one optimizer (param groups may differ) "
                "or drop TrustRegion."
            )
        optimizer = trainer.optimizers[0]
        self._params = trainable([optimizer])
        self.guard.reset()
        self._handles = [
            optimizer.register_step_pre_hook(self._before_step),
            optimizer.register_step_post_hook(self._after_step),
        ]

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.core.release()

    @override
    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor) -> None:
        self.guard.add(loss, self)

    @override
    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        verdict = self.guard.check(trainer, self._params)
        self._skip = verdict.reason is not None
        if self._skip:  # the guard reported it; the radius shrinks
            drop_gradients(self._params)
            self.core.skip()
            return
        if verdict.loss is not None:  # None: no loss went through Lightning's backward; mu keeps its value
            self.core.observe_loss(verdict.loss)
        self._unclipped_sq = grad_square_norms(self._params)  # read on the host with the projection's sums

    def _before_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self.core.snapshot(self._params)

    def _after_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        if self._skip:
            return
        grads = [p.grad for p in self._params]
        outcome = self.core.constrain(self._params, grads, self.radius_scale(), unclipped_sq=self._unclipped_sq)
        self.last_outcome = outcome
        if outcome.restored:
            rank_zero_warn("TrustRegion: the optimizer produced a non-finite update; the weights were put back.")

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        radius = self.core.effective_radius(self.radius_scale())
        if radius != float("inf"):
            pl_module.log("trust/radius", radius, on_step=True, on_epoch=False)
        pl_module.log("trust/active_rate", self.active_rate(), on_step=True, on_epoch=False)

    def active_rate(self) -> float:
        """The fraction of optimizer steps the bound cut."""
        return self.core.cut_steps / self.core.steps if self.core.steps else 0.0

    def activation_rate(self) -> float:
        """The former name of active_rate()."""
        return self.active_rate()

    def summary(self) -> dict[str, float | int]:
        c = self.core
        return {
            "steps": c.steps,
            "skipped_steps": c.skipped,
            "final_loss": round(c.last_loss, 4),
            "active_rate": round(self.active_rate(), 4),
            "final_radius": float(f"{c.effective_radius():.4g}"),
            "loss_spikes": c.spikes,
        }

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        report_summary(trainer, "TrustRegion", "trust_summary", self.summary())

    @override
    def state_dict(self) -> dict[str, Any]:
        return {**self.core.state_dict(), "scope": self.core.settings.scope}

    @override
    def load_state_dict(self, state: dict[str, Any]) -> None:
        scope = self.core.settings.scope
        if state.get("scope", scope) != scope:
            raise ValueError(
                f"the checkpoint was written with scope={state['scope']!r}; this TrustRegion has scope={scope!r}."
            )
        self.core.load_state_dict(state)
