"""The packed inference layer on a CPU: int8 activation codes times int8 weight codes.

torch._int_mm (oneDNN) multiplies int8 matrices into exact int32 sums while reading a quarter of the
bytes of an fp32 matmul (benchmarks/packed_cpu.py measures it against nn.Linear). The sums are the
integers reference.code_sums computes in floating point, and reference.scale_sums applies the scales
to both, so this path gives the reference's outputs bit for bit.
"""

from __future__ import annotations

import torch


def available() -> bool:
    return hasattr(torch, "_int_mm")


def int_sums(x_codes: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """x_codes @ codes^T for int8 matrices (tokens, in) and (out, in), as exact int32 sums."""
    if not x_codes.shape[0]:
        return torch.zeros(0, codes.shape[0], dtype=torch.int32, device=codes.device)
    return torch._int_mm(x_codes, codes.t())  # [M, K] @ [K, N] -> [M, N], int32
