"""SignalTracker: the auxiliary network's inputs, each normalized to roughly [-3, 3] by a fixed map.

Fixed maps rather than running standardization: the inputs then mean the same thing at every step of
every run, and a checkpoint needs only the few scalars below.
"""

from __future__ import annotations

import math

import torch

FEATURE_NAMES = (
    "log_loss",  # log(loss EMA / its first value): how far training has come
    "loss_slope",  # per-step change of log loss EMA, x1000 (-1 = falling 0.1% a step)
    "log_grad_norm",  # log ||g|| minus its EMA: gradient bursts
    "log_displacement",  # log(||theta - EMA(theta)|| / ||theta||), shifted: movement over the horizon
    "progress",  # step / total steps, mapped to [-1, 1]
    "hypergradient",  # EMA of the trace cosine, x10
    "last_log_multiplier",  # the network's own last output, / its bound
    "last_log_radius_scale",  # likewise for the trust-radius head
)


def _clip(x: float, bound: float = 3.0) -> float:
    return max(-bound, min(bound, x))


class SignalTracker:
    def __init__(self, loss_decay: float = 0.95, slope_decay: float = 0.98) -> None:
        self.loss_decay, self.slope_decay = loss_decay, slope_decay
        self.log_loss_ema: float | None = None
        self.first_log_loss = 0.0
        self.slope = 0.0
        self.log_grad_ema: float | None = None
        self.hyper_ema = 0.0
        self.last_loss = float("nan")
        self.last_log_grad = 0.0

    def update(self, loss: float, grad_norm: float, cosine: float) -> None:
        if math.isfinite(loss):  # an unknown loss (nan) leaves the loss signals as they were
            self._update_loss(loss)
        log_grad = math.log(max(grad_norm, 1e-12))
        self.log_grad_ema = (
            log_grad if self.log_grad_ema is None else self.log_grad_ema + 0.05 * (log_grad - self.log_grad_ema)
        )
        self.last_log_grad = log_grad
        self.hyper_ema += 0.05 * (cosine - self.hyper_ema)

    def _update_loss(self, loss: float) -> None:
        self.last_loss = loss
        log_loss = math.log(max(loss, 1e-12))
        if self.log_loss_ema is None:
            self.log_loss_ema = self.first_log_loss = log_loss
        else:
            previous = self.log_loss_ema
            self.log_loss_ema += (1 - self.loss_decay) * (log_loss - previous)
            self.slope += (1 - self.slope_decay) * ((self.log_loss_ema - previous) - self.slope)

    def features(
        self, displacement: float, progress: float, last_multiplier: float, last_radius: float
    ) -> torch.Tensor:
        """`last_multiplier` and `last_radius` are the network's last outputs divided by their bounds."""
        log_disp = math.log(max(displacement, 1e-8))
        values = (
            _clip(self.log_loss_ema - self.first_log_loss) if self.log_loss_ema is not None else 0.0,
            _clip(1000 * self.slope),
            _clip(self.last_log_grad - self.log_grad_ema),
            _clip((log_disp + 4.0) / 2.0),  # relative displacements of 1e-3..1e-1 map to about -1.5..0.8
            2.0 * min(max(progress, 0.0), 1.0) - 1.0,
            _clip(10 * self.hyper_ema),
            last_multiplier,
            last_radius,
        )
        return torch.tensor(values, dtype=torch.float64)

    def state_dict(self) -> dict[str, float]:
        return {
            "signals.log_loss_ema": float("nan") if self.log_loss_ema is None else self.log_loss_ema,
            "signals.first_log_loss": self.first_log_loss,
            "signals.slope": self.slope,
            "signals.log_grad_ema": float("nan") if self.log_grad_ema is None else self.log_grad_ema,
            "signals.last_log_grad": self.last_log_grad,
            "signals.hyper_ema": self.hyper_ema,
            "signals.last_loss": self.last_loss,
        }

    def load_state_dict(self, state: dict) -> None:
        def opt(key: str) -> float | None:
            value = state.get(key, float("nan"))
            return None if math.isnan(value) else float(value)

        self.log_loss_ema = opt("signals.log_loss_ema")
        self.log_grad_ema = opt("signals.log_grad_ema")
        self.first_log_loss = float(state.get("signals.first_log_loss", 0.0))
        self.slope = float(state.get("signals.slope", 0.0))
        self.last_log_grad = float(state.get("signals.last_log_grad", 0.0))
        self.hyper_ema = float(state.get("signals.hyper_ema", 0.0))
        self.last_loss = float(state.get("signals.last_loss", float("nan")))
