"""Launching an autotuned kernel, on a GPU or under Triton's CPU interpreter."""

from __future__ import annotations

import os

import torch


def interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def launch(kernel, tuned, configs, grid, **arguments) -> None:
    """Run `tuned` (kernel wrapped in triton.autotune over `configs`) with grid(meta) on the kernel's
    `arguments`, all by name.

    Autotuning times the configs on the device; the interpreter (CPU CI) has nothing to time, so there
    the plain kernel runs with the first config, which each kernel file lists first for that reason.
    """
    if interpreted():
        meta = dict(configs[0].kwargs)
        kernel[grid(meta)](**arguments, **meta)
    else:
        tuned[grid](**arguments)


def check_float(t: torch.Tensor, name: str) -> torch.Tensor:
    if t.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise TypeError(f"`{name}` must be fp32, fp16 or bf16, got {t.dtype}.")
    return t.contiguous()


def rows_of(x: torch.Tensor) -> torch.Tensor:
    """x as a contiguous (tokens, features) matrix; leading dims flattened, zero tokens allowed."""
    return x.reshape(-1, x.shape[-1]).contiguous()
