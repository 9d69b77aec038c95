"""Fast paths for the layers of quant/ (Triton on GPUs, int8 matmuls on CPUs), and the choice of path.

The environment variable LIGHTNING_HYBRID_KERNELS chooses:
  * "auto" (default): Triton for CUDA tensors when triton is installed; on a CPU, the packed inference
    layer's int8 matmul (kernels/cpu.py) when its activations are quantized to <= 8 bits; the
    pure-torch reference otherwise (QAT training on a CPU always runs the reference).
  * "torch": the reference everywhere, whose packed outputs equal the QAT model's bit for bit.
  * "triton": the Triton kernels on any device; on a CPU that needs TRITON_INTERPRET=1 set before
    triton is first imported (the tests run them that way).
Nothing here imports triton until a kernel is asked for.
"""

from __future__ import annotations

import functools
import importlib.util
import os

import torch

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
    from lightning_hybrid.quant.kernels import cpu

    return cpu.available()
