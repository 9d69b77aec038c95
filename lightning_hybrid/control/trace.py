"""ParameterTrace: the hypergradient of the loss with respect to a log learning rate, over a horizon.

Hypergradient descent (Baydin et al. 2018, "Online Learning Rate Adaptation with Hypergradient
Descent") uses d loss_t / d log lr_{t-1} = g_t . dtheta_{t-1}: every optimizer whose update is linear in
the LR (SGD, Adam, AdamW with decoupled decay) has d theta_t / d log lr = dtheta. That one-step signal
is greedy: near the noise floor a smaller LR always lowers the next loss, so it shrinks LRs that are
better over a whole run (short-horizon bias, Wu et al. 2018).

Three estimates, each a cosine so that its scale does not depend on the model's size, each over a
horizon of ~1/(1 - beta) steps (bar_theta is the EMA of the parameters with decay beta):

  greedy:   cos(g_t, theta_t - bar_theta_{t-1}). Telescoping, theta_t - bar_theta_{t-1} =
            sum_i beta^i dtheta_{t-1-i}, so g_t . (theta_t - bar_theta_{t-1}) =
            sum_i beta^i d loss_t / d log lr_{t-1-i}: the exact first-order hypergradient of the current
            loss with respect to the recent log-LRs. Still greedy: it counts the oscillation across
            the valley that a larger LR causes, which later annealing removes.
  lowpass:  cos(g_t, fast_theta_{t-1} - bar_theta_{t-1}), fast_theta an EMA with a 10x shorter horizon.
            The displacement keeps the slow drift of the iterates and filters out their step-to-step
            oscillation; g_t is a fresh batch's gradient, so its noise is independent of the
            displacement. Averaged over steps it estimates grad L(bar_theta) . drift (for a quadratic
            the mean of gradients is the gradient at the mean point): is the averaged iterate, a proxy
            for the annealed model, still going downhill?
  smoothed: cos(bar_g_t, theta_t - bar_theta_{t-1}) with bar_g the gradient EMA. Biased towards
            larger LRs: bar_g contains the very batch noise the recent steps followed.

What each does on the ternary char-level GPT (benchmarks/README.md, "Hybrid optimizer"): greedy shrinks
the LR to about 1e-4 from any base LR; smoothed drives it to the largest allowed multiplier; lowpass
raises small LRs and, too slowly damped, overshoots large ones.

Memory: float32 copies of the trainable parameters: one (greedy) or two (lowpass, smoothed), plus one
parameter tensor at a time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from lightning_hybrid.utils.checks import choice, in_open_unit


@dataclass(frozen=True)
class TraceReading:
    cosine: float  # cos(g_t, theta_t - bar_theta_{t-1}); 0 before the first update
    grad_norm: float  # ||g_t||
    displacement: float  # ||theta_t - bar_theta_{t-1}|| / ||theta_t||


SIGNALS = ("smoothed", "greedy", "lowpass")


class ParameterTrace:
    """Reads one of the three hypergradient estimates of the module doc, each a cosine over a horizon of
    ~1/(1 - decay) steps: signal="lowpass" (the default) cos(g_t, fast_theta_{t-1} - bar_theta_{t-1}),
    "greedy" cos(g_t, theta_t - bar_theta_{t-1}), "smoothed" cos(bar_g_t, theta_t - bar_theta_{t-1})
    with bar_g the EMA of the gradients (same decay).

    Per step: `read(params, grads)` at theta_t before the optimizer step, then `update(params)` after it.
    `read` is `reading(measure(...))`: a caller that transfers other numbers to the host anyway may
    carry measure()'s tensor along and call reading() on the floats.
    """

    def __init__(self, decay: float = 0.99, signal: str = "lowpass") -> None:
        self.decay = in_open_unit("decay", decay)
        self.signal = choice("signal", signal, SIGNALS)
        self.ema: list[torch.Tensor] = []
        self.grad_ema: list[torch.Tensor | None] = []
        self.fast: list[torch.Tensor] = []  # lowpass: EMA with decay fast_decay
        self.fast_decay = 1 - 10 * (1 - self.decay)

    @property
    def speculative(self) -> bool:
        """Whether measure() leaves the trace unchanged (every signal but "smoothed", which folds the
        gradient into its EMA), so that a caller may measure before it knows the step will be taken."""
        return self.signal != "smoothed"

    def measure(self, params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor | None]) -> torch.Tensor:
        """The per-tensor sums behind read(), as one float32 tensor on the parameters' device (no host
        sync): ||theta_i||^2, ||g_i||^2, g_i . d_i and ||d_i||^2 for each tensor i, in that order."""
        rows: list[torch.Tensor] = []
        with torch.no_grad():
            zero = torch.zeros((), device=params[0].device)
            for i, (p, g) in enumerate(zip(params, grads)):
                p32 = p.detach().float()
                rows.append(p32.square().sum())
                if g is None:
                    rows += [zero, zero, zero]
                    continue
                g32 = g.detach().float()
                if self.signal == "smoothed":
                    g32 = self._smooth(i, g32, len(params))
                rows.append(g32.square().sum())
                if self.ema:
                    d = (self.fast[i] if self.signal == "lowpass" else p32) - self.ema[i]
                    rows += [(g32 * d).sum(), d.square().sum()]
                else:
                    rows += [zero, zero]
        return torch.stack(rows)

    @staticmethod
    def reading(sums: Sequence[float]) -> TraceReading:
        """The TraceReading of measure()'s sums, brought to the host."""
        p_sq, g_sq, dot, d_sq = (sum(sums[k::4]) for k in range(4))  # summed in float64, in order
        denom = math.sqrt(g_sq * d_sq)
        return TraceReading(
            cosine=dot / denom if denom > 0 else 0.0,
            grad_norm=math.sqrt(g_sq),
            displacement=math.sqrt(d_sq / p_sq) if p_sq > 0 else 0.0,
        )

    def read(self, params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor | None]) -> TraceReading:
        """Measure the signal at theta_t with gradient g_t (before the optimizer step): one host sync."""
        return self.reading(self.measure(params, grads).double().tolist())

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
                raise ValueError(
                    f"the parameter list changed: the trace holds {len(self.ema)} tensors, got {len(params)}."
                )
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
