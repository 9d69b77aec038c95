"""Per-layer precision: measure each layer's sensitivity, cluster layers by it, give bits under a budget.

Sensitivity of layer l at width b: the increase of the mean loss on a few held-out batches when that
layer alone has its weight quantized to b bits (everything else untouched, activations not quantized).
Layers are clustered into `num_groups` by 1-D k-means on log(sensitivity at `reference_bits`); every
group gets one width, wider for more sensitive groups (monotone), choosing among all such assignments
the one with the lowest predicted loss increase sum_l sensitivity_l(b_group(l)) whose parameter-weighted
average width is at most `average_bits` (the per-layer effects are assumed to add up).
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from lightning_hybrid.quant import reference as ref
from lightning_hybrid.utils.checks import positive, positive_int
from lightning_hybrid.utils.kmeans import kmeans

LossFn = Callable[[nn.Module, Any], torch.Tensor]


@dataclass
class LayerPlan:
    layer: str
    params: int
    sensitivity: float  # loss increase at the reference width
    group: int  # 0 = least sensitive
    bits: float
    by_bits: dict[str, float] = field(default_factory=dict)  # loss increase at every candidate width


@dataclass
class PrecisionPlan:
    """The bits of every quantized layer, with the measurements that chose them."""

    layers: list[LayerPlan]
    average_bits_budget: float
    reference_bits: float = 1.58

    @property
    def bits(self) -> dict[str, float]:
        return {row.layer: row.bits for row in self.layers}

    @property
    def average_bits(self) -> float:
        """Parameter-weighted average width of the quantized layers."""
        total = sum(row.params for row in self.layers)
        return sum(row.params * row.bits for row in self.layers) / max(total, 1)

    def table(self) -> str:
        rows = [
            f"| layer | params | sensitivity (loss increase at {self.reference_bits} bits) | group | bits |",
            "|---|---|---|---|---|",
        ]
        rows += [f"| {r.layer} | {r.params} | {r.sensitivity:.5f} | {r.group} | {r.bits} |" for r in self.layers]
        summary = f"average {self.average_bits:.3f} bits a weight (budget {self.average_bits_budget})"
        return "\n".join(rows) + "\n\n" + summary

    def save(self, path: str | os.PathLike) -> None:
        """JSON with every row; a Markdown copy of the table next to it (<path>.md)."""
        data = {"average_bits_budget": self.average_bits_budget, "reference_bits": self.reference_bits}
        data["layers"] = [asdict(row) for row in self.layers]
        with open(path, "w") as f:
            json.dump(data, f, indent=2)
        with open(f"{os.fspath(path)}.md", "w") as f:
            f.write(self.table() + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> PrecisionPlan:
        with open(path) as f:
            data = json.load(f)
        try:
            layers = [LayerPlan(**row) for row in data["layers"]]
            return cls(layers, float(data["average_bits_budget"]), float(data.get("reference_bits", 1.58)))
        except (KeyError, TypeError) as err:
            raise ValueError(f"{os.fspath(path)!r} is not a precision plan saved by PrecisionPlan.save: {err}") from err


def _mean_loss(model: nn.Module, batches: Sequence[Any], loss_fn: LossFn) -> float:
    with torch.no_grad():
        return sum(float(loss_fn(model, b)) for b in batches) / len(batches)


def measure_sensitivity(
    model: nn.Module, layers: Mapping[str, nn.Linear], batches: Sequence[Any], loss_fn: LossFn, choices: Iterable[float]
) -> dict[str, dict[float, float]]:
    """{layer: {bits: loss increase when only that layer's weight is quantized to `bits`}}."""
    was_training = model.training
    model.eval()
    try:
        base = _mean_loss(model, batches, loss_fn)
        out: dict[str, dict[float, float]] = {}
        for name, layer in layers.items():
            original = layer.weight.detach().clone()
            out[name] = {}
            for bits in choices:
                with torch.no_grad():
                    layer.weight.copy_(ref.quantize_weight(original, bits))
                out[name][bits] = _mean_loss(model, batches, loss_fn) - base
                with torch.no_grad():
                    layer.weight.copy_(original)
        return out
    finally:
        model.train(was_training)


def group_by_sensitivity(sensitivity: Sequence[float], num_groups: int, seed: int = 0) -> list[int]:
    """Group index per layer (0 = least sensitive) by 1-D k-means on log sensitivity."""
    logs = torch.tensor([[math.log(max(s, 1e-8))] for s in sensitivity])
    k = min(num_groups, len(torch.unique(logs)))
    labels = kmeans(logs, k, seed=seed, batch_size=len(logs)).labels
    order = sorted(range(k), key=lambda g: float(logs[labels == g].mean()))
    rank = {g: i for i, g in enumerate(order)}
    return [rank[int(g)] for g in labels]


def assign_bits(
    groups: Sequence[int],
    params: Sequence[int],
    by_bits: Sequence[Mapping[float, float]],
    choices: Sequence[float],
    budget: float,
) -> list[float]:
    """Bits per group (non-decreasing with sensitivity) minimising the summed loss increase within budget."""
    num_groups = max(groups) + 1
    total = sum(params)
    best: tuple[float, float, tuple[float, ...]] | None = None
    for combo in itertools.combinations_with_replacement(sorted(choices), num_groups):
        width = sum(p * combo[g] for p, g in zip(params, groups)) / total
        if width > budget + 1e-9:
            continue
        cost = sum(effect[combo[g]] for effect, g in zip(by_bits, groups))
        if best is None or (cost, -width) < best[:2]:
            best = (cost, -width, combo)
    if best is None:
        raise ValueError(
            f"`average_bits`={budget} is below the narrowest choice {min(choices)}: no plan fits the budget."
        )
    return [best[2][g] for g in groups]


class PrecisionAllocator:
    """Choose per-layer bits for TernaryQAT from measured layer sensitivity (see the module docstring).

    Args:
        average_bits: parameter-weighted average width budget of the quantized layers.
        num_groups: clusters of layers (each cluster gets one width).
        choices: candidate widths, from {1, 1.58, 2, 4, 8}.
        num_batches: held-out batches the loss is measured on.
        reference_bits: the width whose loss increase is the layer's "sensitivity" for clustering.
        loss_fn: (module, batch) -> scalar loss; None uses the LightningModule's training_step (with its
            logging switched off) when run by TernaryQAT.
        save_to: where TernaryQAT writes the plan (JSON, plus a Markdown table at <save_to>.md); None: don't.
        seed: of the clustering.
    """

    def __init__(
        self,
        average_bits: float = 2.0,
        num_groups: int = 4,
        choices: Sequence[float] = ref.SUPPORTED_BITS,
        num_batches: int = 4,
        reference_bits: float = 1.58,
        loss_fn: LossFn | None = None,
        save_to: str | os.PathLike | None = "precision_plan.json",
        seed: int = 0,
    ) -> None:
        self.choices = tuple(sorted({ref.check_bits(b, "choices") for b in choices}))
        if not self.choices:
            raise ValueError("`choices` is empty: give at least one width from (1, 1.58, 2, 4, 8).")
        self.average_bits = positive("average_bits", average_bits)
        if self.average_bits < self.choices[0]:
            raise ValueError(
                f"`average_bits`={average_bits} is below the narrowest choice {self.choices[0]}: no plan fits."
            )
        self.num_groups = positive_int("num_groups", num_groups)
        self.num_batches = positive_int("num_batches", num_batches)
        self.reference_bits = ref.check_bits(reference_bits, "reference_bits")
        self.loss_fn, self.save_to, self.seed = loss_fn, save_to, seed

    def allocate(
        self, model: nn.Module, layers: Mapping[str, nn.Linear], batches: Sequence[Any], loss_fn: LossFn | None = None
    ) -> PrecisionPlan:
        """Measure, group and assign; `layers` are the nn.Linear layers that will be quantized."""
        loss_fn = loss_fn or self.loss_fn
        if loss_fn is None:
            raise ValueError("PrecisionAllocator needs a `loss_fn(module, batch) -> loss` to measure sensitivity.")
        if not layers:
            raise ValueError("PrecisionAllocator got no layers to allocate bits to.")
        batches = list(batches)[: self.num_batches]
        if not batches:
            raise ValueError("PrecisionAllocator got no batches to measure the loss on.")
        widths = tuple(sorted(set(self.choices) | {self.reference_bits}))
        effects = measure_sensitivity(model, layers, batches, loss_fn, widths)
        names = list(layers)
        sensitivity = [effects[n][self.reference_bits] for n in names]
        groups = group_by_sensitivity(sensitivity, self.num_groups, self.seed)
        params = [layers[n].weight.numel() for n in names]
        bits = assign_bits(groups, params, [effects[n] for n in names], self.choices, self.average_bits)
        rows = [
            LayerPlan(n, p, s, g, b, {str(k): v for k, v in effects[n].items()})
            for n, p, s, g, b in zip(names, params, sensitivity, groups, bits)
        ]
        return PrecisionPlan(rows, self.average_bits, self.reference_bits)
