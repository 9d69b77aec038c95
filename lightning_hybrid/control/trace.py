"""ParameterTrace: the hypergradient of the loss with respect to a log learning rate, over a horizon.

Hypergradient descent (Baydin et al. 2018, "Online Learning Rate Adaptation with Hypergradient
Descent") uses d loss_t / d log lr_{t-1} = g_t . dtheta_{t-1}: every optimizer whose update is linear in
the LR (SGD, Adam, AdamW with decoupled decay) has d theta_t / d log lr = dtheta. That one-step signal
is greedy: near the noise floor a smaller LR always lowers the next loss, so it shrinks LRs that are
better over a whole run (short-horizon bias, Wu et al. 2018).

Here the signal looks back over many steps. Keep the exponential moving average of the parameters,
    bar_theta_t = beta * bar_theta_{t-1} + (1 - beta) * theta_t.
Then theta_t - bar_theta_{t-1} = sum_i beta^i dtheta_{t-1-i} (telescoping the sum over past steps), so
    g_t . (theta_t - bar_theta_{t-1}) = sum_i beta^i d loss_t / d log lr_{t-1-i},
the derivative of the current loss with respect to the log-LRs of the last ~1/(1 - beta) steps, to
first order as in Baydin et al. Over a long horizon the drift along the valley, which grows with the
horizon, outweighs the across-valley oscillation, which does not: the bias towards small LRs shrinks.
The reading is the cosine of the two vectors, so its scale does not depend on the model's size.

Memory: one copy of the trainable parameters (the EMA), plus one parameter tensor at a time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from lightning_hybrid.control.checks import choice, in_open_unit


@dataclass(frozen=True)
class TraceReading:
    cosine: float  # cos(g_t, theta_t - bar_theta_{t-1}); 0 before the first update
    grad_norm: float  # ||g_t||
    displacement: float  # ||theta_t - bar_theta_{t-1}|| / ||theta_t||


SIGNALS = ("smoothed", "greedy", "lowpass")


class ParameterTrace:
    """signal="smoothed" reads cos(bar_g_t, theta_t - bar_theta_{t-1}) with bar_g the EMA of the
    gradients (same decay); "greedy" reads cos(g_t, theta_t - bar_theta_{t-1}) (see the module doc)."""

    def __init__(self, decay: float = 0.99, signal: str = "lowpass") -> None:
        self.decay = in_open_unit("trace_decay", decay)
        self.signal = choice("signal", signal, SIGNALS)
        self.ema: list[torch.Tensor] = []
        self.grad_ema: list[torch.Tensor | None] = []
        self.fast: list[torch.Tensor] = []  # lowpass: EMA with decay fast_decay
        self.fast_decay = 1 - 10 * (1 - self.decay)

    def read(self, params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor | None]) -> TraceReading:
        """Measure the signal at theta_t with gradient g_t (before the optimizer step)."""
        dot = g_sq = d_sq = p_sq = 0.0
        with torch.no_grad():
            for i, (p, g) in enumerate(zip(params, grads)):
                p32 = p.detach().float()
                p_sq += float(p32.square().sum())
                if g is None:
                    continue
                g32 = g.detach().float()
                if self.signal == "smoothed":
                    g32 = self._smooth(i, g32, len(params))
                g_sq += float(g32.square().sum())
                if self.ema:
                    d = (self.fast[i] if self.signal == "lowpass" else p32) - self.ema[i]
                    dot += float((g32 * d).sum())
                    d_sq += float(d.square().sum())
        denom = math.sqrt(g_sq * d_sq)
        return TraceReading(
            cosine=dot / denom if denom > 0 else 0.0,
            grad_norm=math.sqrt(g_sq),
            displacement=math.sqrt(d_sq / p_sq) if p_sq > 0 else 0.0,
        )

    def _smooth(self, i: int, g: torch.Tensor, n: int) -> torch.Tensor:
        if not self.grad_ema:
            self.grad_ema = [None] * n
        if self.grad_ema[i] is None:
            self.grad_ema[i] = g.clone()
        else:
            self.grad_ema[i].lerp_(g, 1.0 - self.decay)
        return self.grad_ema[i]

    def update(self, params: Sequence[torch.Tensor]) -> None:
        """Fold theta_t into the EMA (float32, on the parameters' devices)."""
        with torch.no_grad():
            if not self.ema:
                self.ema = [p.detach().float().clone() for p in params]
                self.fast = [e.clone() for e in self.ema] if self.signal == "lowpass" else []
                return
            for f, p in zip(self.fast, params):
                f.lerp_(p.detach().float(), 1.0 - self.fast_decay)
            if len(self.ema) != len(params):
                raise ValueError(f"the parameter list changed: the trace holds {len(self.ema)} tensors, got {len(params)}.")
            for e, p in zip(self.ema, params):
                e.lerp_(p.detach().float(), 1.0 - self.decay)

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {f"trace.{i}": e.clone() for i, e in enumerate(self.ema)}
        state.update({f"trace_grad.{i}": e.clone() for i, e in enumerate(self.grad_ema) if e is not None})
        state.update({f"trace_fast.{i}": e.clone() for i, e in enumerate(self.fast)})
        return state

    def load_state_dict(self, state: dict, device_of: Sequence[torch.Tensor]) -> None:
        def load(prefix: str) -> list:
            if not any(k.startswith(prefix) for k in state):
                return []
            return [
                state[k].to(p.device, torch.float32).clone() if (k := f"{prefix}{i}") in state else None
                for i, p in enumerate(device_of)
            ]

        self.ema, self.grad_ema, self.fast = load("trace."), load("trace_grad."), load("trace_fast.")
