"""Gradual quantization: the warm-up weight lam of W + lam * (Q(W) - W), by optimizer step."""

from __future__ import annotations

from torch import nn

from lightning_hybrid.quant.linear import BitLinear, bit_linears


def warmup_lambda(step: int, warmup_steps: int) -> float:
    """lam in [0, 1]: linear from 0 at step 0 to 1 at `warmup_steps` (1 throughout when warmup_steps <= 0)."""
    if warmup_steps <= 0:
        return 1.0
    return min(1.0, max(step, 0) / warmup_steps)


def set_quant_lambda(layers: dict[str, BitLinear] | nn.Module, lam: float) -> None:
    """Set the warm-up weight of every BitLinear (in a mapping, or anywhere in a module)."""
    modules = bit_linears(layers).values() if isinstance(layers, nn.Module) else layers.values()
    for layer in modules:
        layer.quant_lambda = float(lam)
