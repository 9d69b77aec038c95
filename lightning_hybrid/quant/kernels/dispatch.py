"""Which path a quantized layer takes: the environment variable LIGHTNING_HYBRID_KERNELS, the tensor's
device, whether triton is installed (quant/kernels/__init__.py describes the choices)."""

from __future__ import annotations

import functools
import importlib.util
import os

import torch

from lightning_hybrid.quant.kernels import cpu  # torch only: no triton import on this path

CHOICES = ("auto", "torch", "triton")


def requested() -> str:
    choice = os.environ.get("LIGHTNING_HYBRID_KERNELS", "auto")
    if choice not in CHOICES:
        raise ValueError(f"LIGHTNING_HYBRID_KERNELS must be one of {CHOICES}, got {choice!r}.")
    return choice


@functools.cache
def triton_installed() -> bool:
    try:
        return importlib.util.find_spec("triton") is not None
    except ValueError:  # a module entry without a spec, e.g. sys.modules["triton"] = None to hide it
        return False


def use_triton(t: torch.Tensor) -> bool:
    choice = requested()
    if choice == "torch":
        return False
    if choice == "triton":
        if not triton_installed():
            raise ImportError("LIGHTNING_HYBRID_KERNELS=triton but triton is not installed: pip install triton.")
        return True
    return t.is_cuda and triton_installed()


def use_int8_cpu(t: torch.Tensor, act_bits: int | None) -> bool:
    """The packed layer's CPU int8 path: on "auto", for a CPU tensor and activations of <= 8 bits."""
    if requested() != "auto" or t.device.type != "cpu" or act_bits is None or act_bits > 8:
        return False
    return cpu.available()
