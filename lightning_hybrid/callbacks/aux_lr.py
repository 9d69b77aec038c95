"""AuxLRController: a small network that learns the learning rate online, as a Lightning callback."""

from __future__ import annotations

from collections import Counter
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_info
from typing_extensions import override

from lightning_hybrid.callbacks._steps import (
    StepGuard,
    drop_gradients,
    refuse_sharded,
    report_summary,
    trainable,
)
from lightning_hybrid.callbacks.trust_region import TrustRegion
from lightning_hybrid.control.aux_net import AuxLRLearner, AuxLRSettings
from lightning_hybrid.control.lr_scale import ScaledLR
from lightning_hybrid.control.signals import SignalTracker
from lightning_hybrid.control.trace import SIGNALS, ParameterTrace
from lightning_hybrid.utils.checks import choice, number
from lightning_hybrid.utils.settings import strict

MODES = ("multiply", "replace")


class AuxLRController(pl.Callback):
    """Sets every param group's LR to (scheduled LR) x m_t, where m_t comes from a 354-parameter MLP
    that reads the training signals (lightning_hybrid.control.signals.FEATURE_NAMES) and learns online
    from the hypergradient of the loss with respect to its own output over a ~1/(1 - horizon_decay)-step
    horizon. The derivation is in lightning_hybrid/control/trace.py and control/aux_net.py.

    Args:
        mode: "multiply" scales whatever the configured LR schedulers set; "replace" holds the scheduled
            LR at the optimizer's base LR (the schedulers still step) so the network alone shapes it.
        signal: the hypergradient estimate it learns from: "lowpass" (default), "greedy" or "smoothed"
            (lightning_hybrid/control/trace.py).
        learn_until: fraction of the run's optimizer steps (Trainer.estimated_stepping_batches) during
            which the network learns and moves the multiplier; afterwards the multiplier is held and the
            schedule alone shapes the LR. None: 0.3 with mode="multiply", 1.0 with "replace" (where
            there is no schedule to anneal). Every hypergradient estimate here turns towards smaller
            LRs once batch noise dominates the loss, the short-horizon bias of Wu et al. 2018; measured
            on the ternary char-level GPT, the multiplier fell from about 16 to 1 between steps 400 and
            2000 of 2000 when it kept learning (benchmarks/results/design_history/). The schedule
            anneals anyway.
        cluster_key: where a batch carries its cluster id: batch[cluster_key] for a dict batch, else the
            attribute of that name (per-sample ids use the batch's most common one).
        **settings: the network's, lightning_hybrid.control.AuxLRSettings:
            max_multiplier (32): m_t stays in [1/max_multiplier, max_multiplier];
            max_radius_scale (2): bound of the trust-radius scale proposed to a TrustRegion callback;
            aux_lr (3e-4): Adam step size of the network's own optimizer;
            horizon_decay (0.99): beta of the hypergradient horizon (about 100 steps);
            hidden (32): width of the network's hidden layer;
            num_clusters (0): rows of the cluster-id embedding (0: ignore cluster ids);
            seed (0): the network's initialization.

    With a TrustRegion in the same Trainer, this controller scales its radius by the network's second
    output, credits the part of each step the region cut to that output, and gives the region its
    StepGuard: the loss and the non-finite check are reduced once a step for both.

    Host syncs a step: one (the guard's, which carries the signal's sums), plus the TrustRegion's
    projection; signal="smoothed" adds one.

    Memory: two float32 copies of the trainable parameters (the two parameter EMAs of signal="lowpass").
    With several optimizers the signal is read at the first optimizer's step, over all of them.
    """

    def __init__(
        self,
        mode: str = "multiply",
        signal: str = "lowpass",
        learn_until: float | None = None,
        cluster_key: str = "cluster",
        **settings: Any,
    ) -> None:
        self.mode = choice("mode", mode, MODES)
        if learn_until is None:
            learn_until = 0.3 if mode == "multiply" else 1.0
        self.learn_until = number("learn_until", learn_until, 0, 1, open_low=True)
        self.learner = AuxLRLearner(strict(AuxLRSettings, settings, "AuxLRController"))
        self.trace = ParameterTrace(self.learner.settings.horizon_decay, choice("signal", signal, SIGNALS))
        self.signals = SignalTracker()
        self.lrs = ScaledLR()
        self.cluster_key = cluster_key
        self.steps = self.skipped = 0
        self.multiplier_sum = 0.0
        self.last_hypergradient = 0.0
        self.guard = StepGuard(self, "AuxLRController")
        self._cluster: list[int] | None = None
        self._trust_region: TrustRegion | None = None
        self._trust_scale: Any = None  # the TrustRegion's radius_scale before this controller set it
        self._trust_guard: StepGuard | None = None  # and its own guard
        self._restored_trace: dict | None = None
        self._handles: list[Any] = []

    # -- wiring ---------------------------------------------------------------------------------------
    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            refuse_sharded(trainer, "AuxLRController")

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # This controller owns the link to a TrustRegion: it scales the region's radius and reads how
        # much of each step the region cut.
        self.guard.reset()
        self._trust_region = next((c for c in trainer.callbacks if isinstance(c, TrustRegion)), None)
        if self._trust_region is not None:
            self._trust_scale = self._trust_region.radius_scale
            self._trust_region.radius_scale = lambda: self.learner.radius_scale
            self._trust_guard = self._trust_region.guard
            self._trust_region.guard = self.guard.share_with("TrustRegion")
        self.lrs.attach(trainer.optimizers, replace=self.mode == "replace")
        self._handles = [
            o.register_step_post_hook(lambda opt, args, kwargs, i=i: self.lrs.unscale(opt, i))
            for i, o in enumerate(trainer.optimizers)
        ]
        if self._restored_trace is not None:
            self.trace.load_state_dict(self._restored_trace, trainable(trainer.optimizers))
            self._restored_trace = None
        if self.mode == "replace":
            rank_zero_info(
                "AuxLRController(mode='replace') sets the learning rate itself: the configured LR schedulers "
                "still step but no longer change it (base LR x the network's multiplier)."
            )

    @override
    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if self._trust_region is not None:
            self._trust_region.radius_scale = self._trust_scale
            self._trust_region.guard = self._trust_guard

    # -- per step -------------------------------------------------------------------------------------
    @override
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if not self.learner.net.num_clusters:
            return
        own = _cluster_id(batch, self.cluster_key)
        ids = trainer.strategy.all_gather(torch.tensor(-1 if own is None else own, device=pl_module.device))
        present = [int(i) for i in ids.reshape(-1).tolist() if i >= 0]
        self._cluster = present or None  # the same list on every rank

    @override
    def on_before_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule, loss: torch.Tensor) -> None:
        self.guard.add(loss, self)

    @override
    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        if optimizer is not trainer.optimizers[0]:
            return
        params = trainable(trainer.optimizers)
        grads = [p.grad for p in params]
        progress = trainer.global_step / max(trainer.estimated_stepping_batches, 1)
        learning = progress < self.learn_until
        # The signal's sums travel with the guard's verdict: one host transfer for both.
        sums = self.trace.measure(params, grads) if learning and self.trace.speculative and grads else None
        verdict = self.guard.check(trainer, params, sums)
        if verdict.reason is not None:  # the guard reported it
            drop_gradients(params)
            self.skipped += 1
            return
        loss = verdict.loss
        if not learning:  # held: keep the multiplier, pick up the schedule's changes
            if loss is not None:
                self.signals.last_loss = loss  # the summary's final loss
            self.lrs.apply(trainer.optimizers, self.learner.multiplier)
            self._count(self.learner.multiplier)
            return
        if loss is None:  # no loss seen (manual optimization without manual_backward): the last one stands
            loss = self.signals.last_loss
        cut = self._trust_region.last_cut_fraction if self._trust_region is not None else 0.0
        self.learner.settle(cut)
        carried = sums is not None and len(verdict.extra) == sums.numel()
        reading = self.trace.reading(verdict.extra) if carried else self.trace.read(params, grads)
        self.learner.learn(reading.cosine)
        self.trace.update(params)
        self.signals.update(loss, reading.grad_norm, reading.cosine)
        features = self.signals.features(reading.displacement, progress, *self.learner.last_outputs())
        multiplier, _ = self.learner.propose(features, self._cluster)
        self.lrs.apply(trainer.optimizers, multiplier)
        self._count(multiplier)
        self.last_hypergradient = reading.cosine

    def _count(self, multiplier: float) -> None:
        self.steps += 1
        self.multiplier_sum += multiplier

    @property
    def radius_scale(self) -> float:
        return self.learner.radius_scale

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self.lrs.rescale(trainer.optimizers)  # after the schedulers stepped on the unscaled LRs
        pl_module.log("auxlr/multiplier", self.learner.multiplier, on_step=True, on_epoch=False)
        pl_module.log("auxlr/hypergradient", self.last_hypergradient, on_step=True, on_epoch=False)

    def summary(self) -> dict[str, float | int]:
        return {
            "steps": self.steps,
            "skipped_steps": self.skipped,
            "final_loss": round(self.signals.last_loss, 4),
            "mean_lr_multiplier": round(self.multiplier_sum / self.steps, 4) if self.steps else float("nan"),
            "final_lr_multiplier": round(self.learner.multiplier, 4),
        }

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        report_summary(trainer, "AuxLRController", "auxlr_summary", self.summary())

    # -- checkpoint state -------------------------------------------------------------------------------
    @override
    def state_dict(self) -> dict[str, Any]:
        state = {"steps": self.steps, "skipped": self.skipped, "multiplier_sum": self.multiplier_sum, "mode": self.mode}
        state["last_hypergradient"] = self.last_hypergradient  # still logged while the multiplier is held
        state.update(self.learner.state_dict())
        state.update(self.trace.state_dict())
        state.update(self.signals.state_dict())
        state.update(self.lrs.state_dict())
        return state

    @override
    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("mode", self.mode) != self.mode:
            raise ValueError(
                f"the checkpoint was written with mode={state['mode']!r}; this AuxLRController has mode={self.mode!r}."
            )
        self.steps, self.skipped = int(state.get("steps", 0)), int(state.get("skipped", 0))
        self.multiplier_sum = float(state.get("multiplier_sum", 0.0))
        self.last_hypergradient = float(state.get("last_hypergradient", 0.0))
        self.learner.load_state_dict(state)
        self.signals.load_state_dict(state)
        self.lrs.load_state_dict(state)
        self._restored_trace = {
            k: v for k, v in state.items() if k.startswith("trace")
        }  # placed on the devices at fit start


def _cluster_id(batch: Any, key: str) -> int | None:
    value = batch.get(key) if isinstance(batch, dict) else getattr(batch, key, None)
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        values = value.reshape(-1).tolist()
        return Counter(int(v) for v in values).most_common(1)[0][0] if values else None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError(
        f"the batch's `{key}` must be an int or an integer tensor of cluster ids, got {type(value).__name__}."
    )
