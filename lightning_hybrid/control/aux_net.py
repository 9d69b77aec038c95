"""The auxiliary network that sets the learning rate, and the rule by which it learns online.

AuxNetwork: an MLP (8 signals [+ a cluster embedding] -> 32 tanh -> 2) on one flat float64 parameter
vector, 354 parameters without clusters. Output 0 is the log LR multiplier a = log(M) tanh(o_0),
bounded to [1/M, M]; output 1 the log trust-radius scale s = log(R) tanh(o_1), in [1/R, R]. The last
layer starts at zero, so a fresh network proposes multiplier 1 and scale 1.

Learning rule (AuxLRLearner). The LR of step j is lr_j = base_j * exp(a_j), so an update linear in the
LR has d theta_{j+1} / d a_j = dtheta_j; a step that the trust region cut to its radius has
d theta / d a = 0 and d theta / d s = dtheta instead. ParameterTrace gives, at step t,
    h_t = cos(g_t, sum_i beta^i dtheta_{t-1-i}),  proportional to  sum_i beta^i d loss_t / d a_{t-1-i}.
The network's gradient of loss_t is, by the chain rule, sum_i (d loss_t / d a_{t-1-i}) d a_{t-1-i} / d phi
(and likewise for s). It is estimated as h_t * z_t with the eligibility traces
    z^a_t = beta z^a_{t-1} + (1 - beta) (1 - c_{t-1}) d a_{t-1} / d phi
    z^s_t = beta z^s_{t-1} + (1 - beta) c_{t-1} d s_{t-1} / d phi
where c_j in [0, 1] is the fraction of step j the trust region cut (0 without one). Replacing the sum of
products by the product of the two sums is exact when d a / d phi changes slowly over the horizon,
which it does: the network moves by small Adam steps. phi is then updated by Adam on h_t (z^a_t + z^s_t):
the network is trained by gradient descent on the training loss, through the LR it sets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from lightning_hybrid.control.signals import FEATURE_NAMES
from lightning_hybrid.utils.checks import above_one, in_open_unit, integer, non_negative_int, positive, positive_int
from lightning_hybrid.utils.settings import strict

CLUSTER_DIM = 4


class AuxNetwork:
    def __init__(
        self, n_features: int = len(FEATURE_NAMES), hidden: int = 32, num_clusters: int = 0, seed: int = 0
    ) -> None:
        self.n_features, self.hidden, self.num_clusters = n_features, hidden, num_clusters
        n_in = n_features + (CLUSTER_DIM if num_clusters else 0)
        self.shapes = {
            "w1": (hidden, n_in),
            "b1": (hidden,),
            "w2": (2, hidden),
            "b2": (2,),
            "emb": (num_clusters, CLUSTER_DIM),
        }
        self.numel = sum(math.prod(s) for s in self.shapes.values())
        gen = torch.Generator().manual_seed(seed)
        parts = {
            "w1": torch.randn(hidden, n_in, generator=gen, dtype=torch.float64) / math.sqrt(n_in),
            "b1": torch.zeros(hidden, dtype=torch.float64),
            "w2": torch.zeros(2, hidden, dtype=torch.float64),
            "b2": torch.zeros(2, dtype=torch.float64),
            "emb": torch.randn(num_clusters, CLUSTER_DIM, generator=gen, dtype=torch.float64) * 0.5,
        }
        self.params = torch.cat([parts[k].reshape(-1) for k in self.shapes])

    def _views(self, phi: torch.Tensor) -> dict[str, torch.Tensor]:
        out, offset = {}, 0
        for name, shape in self.shapes.items():
            n = math.prod(shape)
            out[name] = phi[offset : offset + n].view(shape)
            offset += n
        return out

    def forward(self, phi: torch.Tensor, features: torch.Tensor, clusters: Sequence[int] | None = None) -> torch.Tensor:
        """`clusters`: the cluster ids of the step's batches (one per rank): their embeddings are averaged;
        None (a batch without an id) reads the mean embedding."""
        v = self._views(phi)
        x = features
        if self.num_clusters:
            rows = [c % self.num_clusters for c in clusters] if clusters else list(range(self.num_clusters))
            x = torch.cat([features, v["emb"][rows].mean(0)])
        return v["w2"] @ torch.tanh(v["w1"] @ x + v["b1"]) + v["b2"]


@dataclass(frozen=True)
class AuxLRSettings:
    """The network and its learning rule; the names are AuxLRController's arguments.

    max_multiplier: M; the multiplier stays in [1/M, M].
    max_radius_scale: R; the proposed trust-radius scale stays in [1/R, R].
    aux_lr: Adam step size of the network's own optimizer.
    horizon_decay: beta of the eligibility traces and of the hypergradient horizon (~1/(1 - beta) steps).
    hidden, num_clusters, seed: the network's width, cluster-embedding rows (0: none) and init seed.
    """

    max_multiplier: float = 32.0
    max_radius_scale: float = 2.0
    aux_lr: float = 3e-4
    horizon_decay: float = 0.99
    hidden: int = 32
    num_clusters: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        above_one("max_multiplier", self.max_multiplier)
        above_one("max_radius_scale", self.max_radius_scale)
        positive("aux_lr", self.aux_lr)
        in_open_unit("horizon_decay", self.horizon_decay)
        positive_int("hidden", self.hidden)
        non_negative_int("num_clusters", self.num_clusters)
        integer("seed", self.seed)


class AuxLRLearner:
    """Proposes (LR multiplier, trust-radius scale) from the signals and learns from the hypergradient.

    Built from an AuxLRSettings or from its fields: AuxLRLearner(aux_lr=1e-2).
    """

    def __init__(self, settings: AuxLRSettings | None = None, **fields: Any) -> None:
        if settings is not None and fields:
            raise TypeError("AuxLRLearner takes an AuxLRSettings or its fields, not both.")
        self.settings = settings if settings is not None else strict(AuxLRSettings, fields, "AuxLRLearner")
        s = self.settings
        self.log_max_multiplier = math.log(s.max_multiplier)
        self.log_max_radius = math.log(s.max_radius_scale)
        self.lr, self.decay = s.aux_lr, s.horizon_decay
        self.net = AuxNetwork(hidden=s.hidden, num_clusters=s.num_clusters, seed=s.seed)
        n = self.net.numel
        self.z_a, self.z_s = torch.zeros(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64)
        self.adam_m, self.adam_v = torch.zeros(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64)
        self.adam_step = 0
        self.pending: tuple[torch.Tensor, torch.Tensor] | None = None  # d a / d phi, d s / d phi of the last proposal
        self.log_multiplier = 0.0
        self.log_radius_scale = 0.0

    @property
    def multiplier(self) -> float:
        return math.exp(self.log_multiplier)

    @property
    def radius_scale(self) -> float:
        return math.exp(self.log_radius_scale)

    def last_outputs(self) -> tuple[float, float]:
        """The last outputs divided by their bounds, in [-1, 1]: the network's own input."""
        return self.log_multiplier / self.log_max_multiplier, self.log_radius_scale / self.log_max_radius

    def propose(self, features: torch.Tensor, clusters: Sequence[int] | None = None) -> tuple[float, float]:
        phi = self.net.params.detach().requires_grad_(True)
        out = self.net.forward(phi, features.to(torch.float64), clusters)
        a = self.log_max_multiplier * torch.tanh(out[0])
        s = self.log_max_radius * torch.tanh(out[1])
        grad_a, grad_s = (torch.autograd.grad(y, phi, retain_graph=True)[0] for y in (a, s))
        self.pending = (grad_a, grad_s)
        self.log_multiplier, self.log_radius_scale = float(a.detach()), float(s.detach())
        return self.multiplier, self.radius_scale

    def settle(self, cut_fraction: float) -> None:
        """Credit the proposal applied at the last step; `cut_fraction` is how much of it the trust region cut."""
        if self.pending is None:
            return
        grad_a, grad_s = self.pending
        c = min(max(cut_fraction, 0.0), 1.0)
        self.z_a.mul_(self.decay).add_(grad_a, alpha=(1 - self.decay) * (1 - c))
        self.z_s.mul_(self.decay).add_(grad_s, alpha=(1 - self.decay) * c)
        self.pending = None

    def learn(self, hypergradient: float) -> None:
        """One Adam step on phi along hypergradient * (z_a + z_s), the estimated d loss / d phi."""
        if not math.isfinite(hypergradient) or hypergradient == 0.0:
            return
        grad = hypergradient * (self.z_a + self.z_s)
        self.adam_step += 1
        b1, b2 = 0.9, 0.999
        self.adam_m.mul_(b1).add_(grad, alpha=1 - b1)
        self.adam_v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        m_hat = self.adam_m / (1 - b1**self.adam_step)
        v_hat = self.adam_v / (1 - b2**self.adam_step)
        self.net.params = self.net.params - self.lr * m_hat / (v_hat.sqrt() + 1e-12)

    def state_dict(self) -> dict:
        state = {
            "net.params": self.net.params.clone(),
            "net.z_a": self.z_a.clone(),
            "net.z_s": self.z_s.clone(),
            "net.adam_m": self.adam_m.clone(),
            "net.adam_v": self.adam_v.clone(),
            "net.adam_step": self.adam_step,
            "net.log_multiplier": self.log_multiplier,
            "net.log_radius_scale": self.log_radius_scale,
        }
        if self.pending is not None:
            state["net.pending_a"], state["net.pending_s"] = (g.clone() for g in self.pending)
        return state

    def load_state_dict(self, state: dict) -> None:
        params = state["net.params"]
        if params.numel() != self.net.numel:
            raise ValueError(
                f"the checkpoint's auxiliary network has {params.numel()} parameters, this one {self.net.numel}: "
                "`hidden` and `num_clusters` must match the run that wrote it."
            )
        self.net.params = params.to(torch.float64).clone()
        for name in ("z_a", "z_s", "adam_m", "adam_v"):
            setattr(self, name, state[f"net.{name}"].to(torch.float64).clone())
        self.adam_step = int(state["net.adam_step"])
        self.log_multiplier = float(state["net.log_multiplier"])
        self.log_radius_scale = float(state["net.log_radius_scale"])
        has_pending = "net.pending_a" in state
        self.pending = (state["net.pending_a"].clone(), state["net.pending_s"].clone()) if has_pending else None
