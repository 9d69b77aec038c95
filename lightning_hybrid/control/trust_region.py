"""TrustRegionCore: bound each optimizer step and adapt the bound with the classical ratio test.

Bound. With scope="global", the step over all trainable parameters satisfies ||dtheta||_2 <= mu; a
longer step is scaled down onto the sphere (theta = theta_old + dtheta * mu / ||dtheta||), keeping its
direction. With scope="tensor", each tensor satisfies ||dtheta_i|| <= mu * ref_i with
ref_i = max(||theta_i||, 1e-2 sqrt(numel_i)): mu is then relative, and fresh zero biases are measured
against about the norm of a typical initialization instead of 0.

Ratio test (Nocedal & Wright, "Numerical Optimization", alg. 4.1), made for minibatches. The
first-order model predicts the decrease pred_t = -g_t . dtheta_t; consecutive batch losses give an
unbiased but noisy estimate of the actual decrease. One step's actual decrease is lost in batch noise
(ternary char-level GPT, AdamW at 1e-2, steps 500-1500: batch-loss std 0.053 against a decrease of
0.0005 a step), so the test runs on windows of `window` steps: actual = (loss EMA at the window's
start) - (loss EMA now), predicted = the sum of pred_t, rho = actual / predicted. The minibatch
prediction overstates the decrease (g_t carries the noise the step fitted), so rho is small even on
healthy windows. At each window's end:
  * bad window: the loss rose by more than twice its noise level and rho < bad_ratio: mu *= shrink;
  * good window: rho > good_ratio and the bound cut at least one of its steps: mu *= grow;
  * otherwise mu stays.
mu never grows past max_growth times its initial (or calibrated) value: growth
undoes shrinking, and the bound stays a bound when an LR controller raises the LR.
A loss spike (more than spike_zscore standard deviations above the loss EMA) or a non-finite step
shrinks mu at once by spike_shrink.

Memory: one copy of the trainable parameters (the snapshot, in their own dtype) plus one float32
temporary the size of the largest tensor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from lightning_hybrid.utils.checks import above_one, choice, in_open_unit, integer, non_negative_int, number, positive
from lightning_hybrid.utils.settings import strict

SCOPES = ("global", "tensor")
_ZERO_TENSOR_RMS = 1e-2  # ref_i floor per element, about the std of a typical initialization


@dataclass(frozen=True)
class StepOutcome:
    norm: float  # ||dtheta|| of the optimizer's proposal (global scope) or its largest ratio to ref_i
    cut_fraction: float  # share of the proposal's squared norm that was scaled down (0: untouched)
    predicted_decrease: float  # -g . dtheta of the step finally taken
    restored: bool  # the proposal was non-finite and the parameters were put back


@dataclass(frozen=True)
class TrustRegionSettings:
    """The bound and how it adapts (the module docstring gives the maths and the defaults' reasons).

    initial_radius: mu_0 (absolute for scope="global", relative to each tensor's norm for "tensor");
        None calibrates it: no bound for the first `calibration_steps` steps, then twice the largest of them.
    scope: "global" (one bound on the whole step) or "tensor" (a relative bound per tensor).
    grow, shrink: factors of mu after a good or a bad window of `window` optimizer steps.
    spike_shrink: factor of mu at a loss spike (`spike_zscore` standard deviations above the loss EMA)
        or a non-finite step.
    good_ratio, bad_ratio: thresholds on the window's actual / predicted decrease.
    min_radius, max_radius: mu stays within them; max_growth: and below max_growth x its initial value.
    """

    initial_radius: float | None = None
    scope: str = "global"
    grow: float = 2.0
    shrink: float = 0.5
    spike_shrink: float = 0.5
    good_ratio: float = 0.0
    bad_ratio: float = 0.0
    spike_zscore: float = 4.0
    window: int = 50
    calibration_steps: int = 50
    min_radius: float = 1e-8
    max_radius: float = 1e8
    max_growth: float = 4.0

    def __post_init__(self) -> None:
        if self.initial_radius is not None:
            positive("initial_radius", self.initial_radius)
        choice("scope", self.scope, SCOPES)
        above_one("grow", self.grow)
        in_open_unit("shrink", self.shrink)
        in_open_unit("spike_shrink", self.spike_shrink)
        if not number("bad_ratio", self.bad_ratio) <= number("good_ratio", self.good_ratio):
            raise ValueError(
                f"`bad_ratio` must not exceed `good_ratio`, got {self.bad_ratio!r} and {self.good_ratio!r}."
            )
        positive("spike_zscore", self.spike_zscore)
        integer("window", self.window, 2)
        non_negative_int("calibration_steps", self.calibration_steps)
        if not positive("min_radius", self.min_radius) < positive("max_radius", self.max_radius):
            raise ValueError(
                f"`min_radius` must be below `max_radius`, got {self.min_radius!r} and {self.max_radius!r}."
            )
        above_one("max_growth", self.max_growth)


class TrustRegionCore:
    """Bounds optimizer steps and adapts the bound (module docstring), without any training framework.

    Per optimizer step the caller calls `observe_loss(loss)` with the loss at the current parameters
    (or `skip()` for a step that must not happen), `snapshot(params)` before the optimizer steps and
    `constrain(params, grads)` after it, which projects the step into the region and returns a
    StepOutcome. `effective_radius()` is the bound in force; the state round-trips through
    `state_dict()` / `load_state_dict()` as flat numbers.

    Built from a TrustRegionSettings or from its fields: TrustRegionCore(initial_radius=0.5, window=10).
    """

    def __init__(self, settings: TrustRegionSettings | None = None, **fields: Any) -> None:
        if settings is not None and fields:
            raise TypeError("TrustRegionCore takes a TrustRegionSettings or its fields, not both.")
        self.settings = settings if settings is not None else strict(TrustRegionSettings, fields, "TrustRegionCore")
        initial = self.settings.initial_radius
        self.radius = None if initial is None else float(initial)
        self.ceiling = math.inf if self.radius is None else self.radius * self.settings.max_growth
        self._snapshot: list[torch.Tensor] = []
        self.reset_statistics()

    def reset_statistics(self) -> None:
        self.steps = 0  # optimizer steps seen (taken or skipped)
        self.cut_steps = 0
        self.spikes = 0
        self.skipped = 0
        self.largest_seen = 0.0  # for calibration
        self.last_cut_fraction = 0.0
        self.last_predicted = float("nan")
        self.loss_mean = float("nan")  # EMA (0.95) of the loss and its variance: spikes and noise level
        self.loss_var = 0.0
        self.observed = 0
        self.last_loss = float("nan")
        self.window_start = float("nan")  # loss_mean when the window began
        self.window_steps = 0
        self.window_predicted = 0.0
        self.window_cut = 0
        self.ratio = float("nan")  # rho of the last finished window

    # -- the step -------------------------------------------------------------------------------
    def snapshot(self, params: Sequence[torch.Tensor]) -> None:
        with torch.no_grad():
            if len(self._snapshot) != len(params):
                self._snapshot = [p.detach().clone() for p in params]
            else:
                for s, p in zip(self._snapshot, params):
                    s.copy_(p.detach())

    def release(self) -> None:
        """Give the snapshot's memory back (the next snapshot allocates it again)."""
        self._snapshot = []

    def effective_radius(self, scale: float = 1.0) -> float:
        return (
            math.inf
            if self.radius is None
            else min(max(self.radius * scale, self.settings.min_radius), self.settings.max_radius)
        )

    def constrain(
        self,
        params: Sequence[torch.Tensor],
        grads: Sequence[torch.Tensor | None],
        scale: float = 1.0,
        grad_factor: float = 1.0,
        unclipped_sq: torch.Tensor | None = None,
    ) -> StepOutcome:
        """Project the step the optimizer just took (params now, snapshot before) into the region.

        `scale` multiplies the radius (the AuxLRController's proposal). Gradient clipping is undone in
        the predicted decrease by `grad_factor` (the unclipped over the clipped gradient norm) or, when
        `unclipped_sq` is given (each gradient's squared norm before clipping, a tensor on the
        parameters' device), by the factor computed from it and `grads`. One host sync.
        """
        if unclipped_sq is not None and grad_factor != 1.0:
            raise ValueError("constrain takes `grad_factor` or `unclipped_sq`, not both.")
        n = len(params)
        with torch.no_grad():
            sums = _step_sums(params, self._snapshot, grads, unclipped_sq).tolist()  # the one host transfer
            sq, dots, norms = sums[:n], sums[n : 2 * n], sums[2 * n : 3 * n]
            if unclipped_sq is not None:
                clipped = math.sqrt(sum(sums[3 * n : 4 * n]))
                grad_factor = math.sqrt(sum(sums[4 * n :])) / clipped if clipped > 0 else 1.0
            dots = [d * grad_factor if g is not None else 0.0 for d, g in zip(dots, grads)]
            refs = [max(r, _ZERO_TENSOR_RMS * math.sqrt(s.numel())) for r, s in zip(norms, self._snapshot)]
            total = sum(sq)
            if not math.isfinite(total) or not all(map(math.isfinite, dots)):
                for p, s in zip(params, self._snapshot):
                    p.copy_(s)
                self.skip()  # counted and shrunk like a skipped step
                return StepOutcome(float("nan"), 1.0, 0.0, restored=True)
            factors, norm = self._factors(sq, refs, scale)
            for p, s, f in zip(params, self._snapshot, factors):
                if f < 1.0:
                    p.sub_(s).mul_(f).add_(s)  # theta = theta_old + f * dtheta, in place
        cut = sum(q * (1 - f * f) for q, f in zip(sq, factors)) / total if total > 0 else 0.0
        predicted = -sum(f * d for f, d in zip(factors, dots))
        self._record_step(norm, cut, predicted)
        return StepOutcome(norm, cut, predicted, restored=False)

    def _factors(self, sq: list[float], refs: list[float], scale: float) -> tuple[list[float], float]:
        radius = self.effective_radius(scale)
        if self.settings.scope == "global":
            norm = math.sqrt(sum(sq))
            f = min(1.0, radius / norm) if norm > 0 else 1.0
            return [f] * len(sq), norm
        ratios = [math.sqrt(q) / r for q, r in zip(sq, refs)]
        return [min(1.0, radius / x) if x > 0 else 1.0 for x in ratios], max(ratios, default=0.0)

    def _record_step(self, norm: float, cut: float, predicted: float) -> None:
        self.steps += 1
        self.cut_steps += cut > 0
        self.window_cut += cut > 0
        self.last_cut_fraction = cut
        self.last_predicted = predicted
        if self.radius is None:
            self.largest_seen = max(self.largest_seen, norm)
            if self.steps >= self.settings.calibration_steps:
                # Calibrated: room for steps twice the largest of the first ones.
                self.radius = min(max(2.0 * self.largest_seen, self.settings.min_radius), self.settings.max_radius)
                self.ceiling = self.radius * self.settings.max_growth

    # -- adapting mu ------------------------------------------------------------------------------
    def observe_loss(self, loss: float) -> bool:
        """The loss at the current parameters (before the next step); adapts mu; True on a spike."""
        spike = self._track(loss)
        if spike:
            self.spikes += 1
            self._resize(self.settings.spike_shrink)
        if math.isfinite(self.last_predicted):
            self.window_predicted += self.last_predicted
            self.window_steps += 1
        if not math.isfinite(self.window_start):
            self.window_start = self.loss_mean
        elif self.window_steps >= self.settings.window:
            self._end_window()
        self.last_loss = loss
        return spike

    def _track(self, loss: float) -> bool:
        """Update the loss EMA and variance; True if `loss` is a spike against them."""
        self.observed += 1
        if not math.isfinite(self.loss_mean):
            self.loss_mean = loss
            return False
        std = max(math.sqrt(self.loss_var), 0.01 * abs(self.loss_mean))  # floor: 1% of the loss
        spike = self.observed > 20 and loss > self.loss_mean + self.settings.spike_zscore * std
        delta = (min(loss, self.loss_mean + self.settings.spike_zscore * std) if spike else loss) - self.loss_mean
        self.loss_mean += 0.05 * delta  # a spike enters clipped, so it does not drag the statistics
        self.loss_var = 0.95 * (self.loss_var + 0.05 * delta * delta)
        return spike

    def _end_window(self) -> None:
        actual = self.window_start - self.loss_mean
        # Noise of a difference of two EMA(0.95) readings of i.i.d. losses: std * sqrt(2 * 0.05 / 1.95).
        noise = math.sqrt(self.loss_var) * math.sqrt(2 * 0.05 / 1.95)
        self.ratio = actual / self.window_predicted if self.window_predicted > 0 else float("nan")
        if actual < -2 * noise and not self.ratio >= self.settings.bad_ratio:
            self._resize(self.settings.shrink)
        elif self.ratio > self.settings.good_ratio and self.window_cut > 0:
            self._resize(self.settings.grow)
        self.window_start, self.window_steps, self.window_predicted, self.window_cut = self.loss_mean, 0, 0.0, 0

    def skip(self) -> None:
        """A step was skipped (non-finite loss or gradient): shrink mu and forget the last prediction."""
        self.steps += 1
        self.skipped += 1
        self.last_predicted = float("nan")
        self._resize(self.settings.spike_shrink)

    def _resize(self, factor: float) -> None:
        if self.radius is not None:
            self.radius = min(
                max(self.radius * factor, self.settings.min_radius), self.settings.max_radius, self.ceiling
            )

    # -- checkpoint state ---------------------------------------------------------------------------
    _STATE = (
        *("steps", "cut_steps", "spikes", "skipped", "largest_seen", "last_cut_fraction", "last_predicted"),
        *("loss_mean", "loss_var", "observed", "last_loss", "window_start", "window_steps", "window_predicted"),
        *("window_cut", "ratio", "ceiling"),
    )

    def state_dict(self) -> dict[str, float | int]:
        state = {f"tr.{k}": getattr(self, k) for k in self._STATE}
        state["tr.radius"] = float("nan") if self.radius is None else self.radius
        return state

    def load_state_dict(self, state: dict) -> None:
        for k in self._STATE:
            if f"tr.{k}" in state:
                setattr(self, k, type(getattr(self, k))(state[f"tr.{k}"]))
        radius = float(state.get("tr.radius", float("nan")))
        self.radius = None if math.isnan(radius) else radius


def _step_sums(
    params: Sequence[torch.Tensor],
    snapshot: Sequence[torch.Tensor],
    grads: Sequence[torch.Tensor | None],
    unclipped_sq: torch.Tensor | None,
) -> torch.Tensor:
    """Per tensor, on the device and in float64: ||dtheta_i||^2, g_i . dtheta_i (0 without a gradient),
    ||theta_old_i||, then, with `unclipped_sq`, ||g_i||^2 and the unclipped ||g_i||^2."""
    zero = torch.zeros((), device=snapshot[0].device)
    sq, dots, norms, grad_sq = [], [], [], []
    for p, s, g in zip(params, snapshot, grads):
        d = p.detach().float() - s.float()
        sq.append(d.square().sum())
        dots.append((g.float() * d).sum() if g is not None else zero)
        norms.append(s.float().norm())
        if unclipped_sq is not None:
            grad_sq.append(g.detach().float().square().sum() if g is not None else zero)
    tail = [] if unclipped_sq is None else [torch.stack(grad_sq), unclipped_sq.float()]
    return torch.cat([torch.stack(sq), torch.stack(dots), torch.stack(norms), *tail]).double()
