"""Which path a quantized layer takes: the environment variable LIGHTNING_HYBRID_KERNELS, the tensor's
device, whether triton is installed (quant/kernels/__init__.py describes the choices)."""

from __future__ import annotations

import functools
import importlib.util
import os

import torch

from lightning_hybrid.quant.kernels import cpu  # torch only: no triton import on this path

CHOICES = ("auto", "torch", "triton")
VARIABLE = "LIGHTNING_HYBRID_KERNELS"
# os.environ's own store and the variable's key in it: `VARIABLE in os.environ` encodes the name on every
# call (~1 us), which shows at batch 1 on a small layer (quant/inference.py's C path).
_STORE = getattr(os.environ, "_data", None)
_KEY = os.environ.encodekey(VARIABLE) if hasattr(os.environ, "encodekey") else VARIABLE


def overridden() -> bool:
    """Whether LIGHTNING_HYBRID_KERNELS is set (unset means "auto")."""
    return _KEY in _STORE if isinstance(_STORE, dict) else VARIABLE in os.environ


def requested() -> str:
    if isinstance(_STORE, dict):  # as in overridden(): os.environ.get costs ~1 us a call
        raw = _STORE.get(_KEY)
        choice = "auto" if raw is None else os.environ.decodevalue(raw)
    else:
        choice = os.environ.get(VARIABLE, "auto")
    if choice not in CHOICES:
        raise ValueError(f"LIGHTNING_HYBRID_KERNELS must be one of {CHOICES}, got {choice!r}.")
    return choice


@functools.cache
def _find_triton() -> bool:
    try:
        return importlib.util.find_spec("triton") is not None
    except ValueError:  # a module entry without a spec, e.g. sys.modules["triton"] = None to hide it
        return False


@torch.compiler.assume_constant_result  # compiled code asks too: a constant there, not a traced lookup
def triton_installed() -> bool:
    return _find_triton()


def use_triton(t: torch.Tensor) -> bool:
    if not overridden():  # "auto" without reading the variable: this runs on every call of a layer
        return t.is_cuda and triton_installed()
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
