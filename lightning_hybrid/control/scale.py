"""One learned scale on a base optimizer's accumulated updates (Mechanic's parameterisation and tuner).

Cutkosky, Defazio & Mehta 2023 ("Mechanic: a learning rate tuner") train with

    theta_t = theta_0 + s_t * Delta_t,    Delta_t = u_0 + ... + u_{t-1},

where u_i is the base optimizer's update at step i (at its own LR). Then d loss(theta_t) / d s = g_t . Delta_t,
whose horizon is the whole run so far: unlike a one-step hypergradient it does not favour ever smaller
LRs once batch noise dominates (the short-horizon bias that shrank the LR of the earlier signals,
control/trace.py). The scale is learned by a parameter-free online learner run at several betas at
once (per beta: a running maximum of |h|, a discounted sum of h^2, a "reward" of the bets won so far;
s = sum over betas of wealth / sqrt(sum h^2)). A small decay term
lambda * ||g|| / ||theta|| * theta . Delta in h pulls s down when the displacement only grows the weights.

Everything stays on the parameters' device as tensors: a step makes no host synchronisation (the
callbacks read the scale as a tensor); the dot products are foreach ops with one reduction.

Memory: two float32 copies of the trainable parameters (theta_0 and Delta).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from lightning_hybrid.utils.checks import in_open_unit, non_negative, positive, positive_int

MECHANIC_BETAS = (0.9, 0.99, 0.999, 0.9999, 0.99999, 0.999999)


@dataclass(frozen=True)
class ScaleSettings:
    """betas: the online learner's discounts, one learner each (their scales add up).
    s_init: the starting wealth, as a fraction of the first |h| (the scale grows from about s_init).
    decay: lambda, the weight of the decay term in the hypergradient.
    eps: added to sqrt(sum h^2) and to norms before dividing."""

    betas: tuple[float, ...] = MECHANIC_BETAS
    s_init: float = 1e-8
    decay: float = 0.01
    eps: float = 1e-8

    def __post_init__(self) -> None:
        if not self.betas:
            raise ValueError("`betas` must list at least one discount in (0, 1), got ().")
        for beta in self.betas:
            in_open_unit("betas", beta)
        positive("s_init", self.s_init)
        non_negative("decay", self.decay)
        positive("eps", self.eps)


class ScaleTuner:
    """The online learner of the module doc: update(h) after each hypergradient, `scale` its sum.

    `count` > 1 learns that many independent scales side by side (one per kind of parameter, say):
    then h and `scale` are vectors of that length."""

    def __init__(
        self, settings: ScaleSettings | None = None, device: torch.device | str = "cpu", count: int = 1
    ) -> None:
        self.settings = settings or ScaleSettings()
        self.count = positive_int("count", count)
        shape = (count, len(self.settings.betas)) if count > 1 else (len(self.settings.betas),)
        self.betas = torch.tensor(self.settings.betas, dtype=torch.float32, device=device)
        self.s = torch.zeros(shape, device=device)
        self.sum_h2 = torch.zeros(shape, device=device)
        self.reward = torch.zeros(shape, device=device)
        self.max_h = torch.full(shape, 1e-6, device=device)

    @property
    def scale(self) -> torch.Tensor:
        """The current scale (>= 0): a 0-d tensor, or one per scale when count > 1."""
        return self.s.sum(-1).clamp(min=0.0)

    def update(self, h: torch.Tensor) -> None:
        """One step of every learner on the hypergradient `h` (d loss / d s: 0-d, or one per scale)."""
        b, h = self.betas, h.unsqueeze(-1) if self.count > 1 else h
        self.max_h.copy_(torch.maximum(b * self.max_h, h.abs()))
        self.sum_h2.mul_(b * b).add_(h * h)
        self.reward.mul_(b).sub_(self.s * h).clamp_(min=0.0)
        wealth = self.max_h * self.settings.s_init / len(self.settings.betas) + self.reward
        self.s.copy_(wealth / (self.sum_h2.sqrt() + self.settings.eps))

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"scale.{k}": getattr(self, k).clone() for k in ("s", "sum_h2", "reward", "max_h")}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        for k in ("s", "sum_h2", "reward", "max_h"):
            value = state[f"scale.{k}"]
            if value.shape != self.s.shape:
                raise ValueError(
                    f"the checkpoint's scale learner holds {tuple(value.shape)} (scales x betas), this one "
                    f"{tuple(self.s.shape)}: `betas` and the number of scales must match the run that wrote it."
                )
            getattr(self, k).copy_(value)


class Displacement:
    """theta_0 and Delta for a list of parameters, with the three foreach steps of the parameterisation:
    hypergradient (before the base step), accumulate (after it) and place (theta = theta_0 + s Delta).

    With `kinds`, each tensor belongs to one of several groups, each with its own scale: the
    hypergradient is then one number per group (over that group's tensors alone) and `scale` one per
    group, as a ScaleTuner(count=number of groups) gives."""

    def __init__(
        self, params: Sequence[torch.Tensor], unit: Sequence[float] | None = None, kinds: Sequence[int] | None = None
    ) -> None:
        """`unit`: per tensor, what its updates are divided by before they are summed (the base LR of its
        param group: then Delta sums unit-LR updates, s is the LR itself, and the run does not depend on
        the base LR). None: 1 (Mechanic's own convention, which it runs at lr 1.0).
        `kinds`: per tensor, the index of its scale (0, 1, ...). None: one scale for all."""
        with torch.no_grad():
            self.origin = [p.detach().float().clone() for p in params]
            self.delta = [torch.zeros_like(o) for o in self.origin]
        self.unit = [1.0] * len(self.origin) if unit is None else [float(u) for u in unit]
        if len(self.unit) != len(self.origin) or not all(u > 0 for u in self.unit):
            raise ValueError(f"`unit` must hold one positive number per parameter tensor, got {list(unit)}.")
        self.kinds = [0] * len(self.origin) if kinds is None else [int(k) for k in kinds]
        if len(self.kinds) != len(self.origin) or min(self.kinds, default=0) < 0:
            raise ValueError(f"`kinds` must hold one index >= 0 per parameter tensor, got {list(kinds)}.")
        self.count = 1 + max(self.kinds, default=0) if kinds is not None else 1
        self.members = [[i for i, k in enumerate(self.kinds) if k == kind] for kind in range(self.count)]

    def _scale_of(self, scale: torch.Tensor, kind: int) -> torch.Tensor:
        return scale if self.count == 1 else scale[kind]

    def hypergradient(
        self,
        params: Sequence[torch.Tensor],
        grads: Sequence[torch.Tensor | None],
        scale: torch.Tensor,
        decay: float,
        eps: float = 1e-8,
    ) -> torch.Tensor:
        """h = g . Delta + decay * scale * ||g|| / ||theta|| * theta . Delta, a 0-d tensor (one per kind
        with several kinds, each over its own tensors). `params` are the weights the decay term reads
        (Mechanic reads them after the base step); a None gradient (a parameter the loss does not reach)
        counts as zero."""
        with torch.no_grad():
            parts = [
                self._kind_hypergradient(params, grads, self._scale_of(scale, k), decay, eps, members)
                for k, members in enumerate(self.members)
            ]
        return parts[0] if self.count == 1 else torch.stack(parts)

    def _kind_hypergradient(
        self,
        params: Sequence[torch.Tensor],
        grads: Sequence[torch.Tensor | None],
        scale: torch.Tensor,
        decay: float,
        eps: float,
        members: list[int],
    ) -> torch.Tensor:
        reached, device = [i for i in members if grads[i] is not None], scale.device
        if not reached:  # a kind the model lacks, or that the loss does not reach: no evidence
            return torch.zeros((), device=device)
        g = [grads[i].float() for i in reached]
        p = [params[i].detach().float() for i in members]
        g_dot = _sum(torch._foreach_mul(g, [self.delta[i] for i in reached]), device)
        p_dot = _sum(torch._foreach_mul(p, [self.delta[i] for i in members]), device)
        g_norm = _sum(torch._foreach_mul(g, g), device).sqrt()
        p_norm = _sum(torch._foreach_mul(p, p), device).sqrt()
        return g_dot + decay * scale * g_norm / (p_norm + eps) * p_dot

    def _groups(self) -> list[tuple[int, list[int]]]:
        """(kind, its tensor indices) for every kind the model has."""
        return [(k, members) for k, members in enumerate(self.members) if members]

    def _along(self, base: list[torch.Tensor], step: list[torch.Tensor], scale: torch.Tensor, k: int) -> list:
        return torch._foreach_add(base, torch._foreach_mul(step, self._scale_of(scale, k)))

    def _per_unit(self, update: list[torch.Tensor], members: list[int]) -> list[torch.Tensor]:
        units = [self.unit[i] for i in members]
        return torch._foreach_div(update, units) if any(u != 1.0 for u in units) else update

    @staticmethod
    def _write(params: Sequence[torch.Tensor], members: list[int], values: list[torch.Tensor]) -> None:
        for i, x in zip(members, values):
            params[i].copy_(x)

    def accumulate(self, params: Sequence[torch.Tensor], scale: torch.Tensor) -> None:
        """Delta += u / unit, u the base optimizer's update: u = theta_after - (theta_0 + scale * Delta),
        where theta_0 + scale * Delta is where this parameterisation had put the weights before the step."""
        with torch.no_grad():
            for k, members in self._groups():
                delta = [self.delta[i] for i in members]
                before = self._along([self.origin[i] for i in members], delta, scale, k)
                update = torch._foreach_sub([params[i].detach().float() for i in members], before)
                torch._foreach_add_(delta, self._per_unit(update, members))

    def anchor(self, params: Sequence[torch.Tensor]) -> None:
        """Keep the weights before the base step in `origin` (the parameterisation without rescaling the
        past, where theta_0 is not needed: see `step_from_anchor`)."""
        with torch.no_grad():
            torch._foreach_copy_(self.origin, [p.detach().float() for p in params])

    def step_from_anchor(self, params: Sequence[torch.Tensor], scale: torch.Tensor) -> None:
        """The step taken at the current scale only: u = theta_after - anchor, Delta += u / unit, and
        theta = anchor + scale * u / unit. The past steps keep the scales they were taken with, so a
        change of scale moves the weights by the next update's size, not by Delta's."""
        with torch.no_grad():
            for k, members in self._groups():
                anchor = [self.origin[i] for i in members]
                update = torch._foreach_sub([params[i].detach().float() for i in members], anchor)
                update = self._per_unit(update, members)
                torch._foreach_add_([self.delta[i] for i in members], update)
                self._write(params, members, self._along(anchor, update, scale, k))

    def place(self, params: Sequence[torch.Tensor], scale: torch.Tensor) -> None:
        """theta = theta_0 + scale * Delta, in each parameter's dtype."""
        with torch.no_grad():
            for k, members in self._groups():
                origin, delta = [self.origin[i] for i in members], [self.delta[i] for i in members]
                self._write(params, members, self._along(origin, delta, scale, k))

    def state_dict(self) -> dict[str, torch.Tensor]:
        state = {f"origin.{i}": o.clone() for i, o in enumerate(self.origin)}
        state.update({f"delta.{i}": d.clone() for i, d in enumerate(self.delta)})
        return state

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        n = sum(k.startswith("origin.") for k in state)
        if n != len(self.origin):
            raise ValueError(f"the checkpoint holds {n} parameter tensors, this model {len(self.origin)}.")
        for i, (o, d) in enumerate(zip(self.origin, self.delta)):
            o.copy_(state[f"origin.{i}"])
            d.copy_(state[f"delta.{i}"])


def _sum(parts: Sequence[torch.Tensor], device: torch.device) -> torch.Tensor:
    """The sum of all elements of all tensors: one reduction over the per-tensor sums (0 for none)."""
    return torch.stack([x.sum() for x in parts]).sum() if parts else torch.zeros((), device=device)
