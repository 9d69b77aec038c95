"""Triton kernels for the quantizers of quant/reference.py, and the choice between them and torch.

`use_triton(t)` is True for a CUDA tensor when triton is installed, unless the environment variable
LIGHTNING_HYBRID_KERNELS says otherwise ("torch": always the reference; "triton": the kernels on any
device, which on a CPU needs TRITON_INTERPRET=1 set before triton is first imported). Nothing here
imports triton until a kernel is asked for.
"""

from __future__ import annotations

import importlib.util
import os

import torch

CHOICES = ("auto", "torch", "triton")


def requested() -> str:
    choice = os.environ.get("LIGHTNING_HYBRID_KERNELS", "auto")
    if choice not in CHOICES:
        raise ValueError(f"LIGHTNING_HYBRID_KERNELS must be one of {CHOICES}, got {choice!r}.")
    return choice


def triton_installed() -> bool:
    return importlib.util.find_spec("triton") is not None


def use_triton(t: torch.Tensor) -> bool:
    choice = requested()
    if choice == "torch":
        return False
    if choice == "triton":
        if not triton_installed():
            raise ImportError("LIGHTNING_HYBRID_KERNELS=triton but triton is not installed: pip install triton.")
        return True
    return t.is_cuda and triton_installed()
