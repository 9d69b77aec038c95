"""The matmul launchers' operand checks (quant/kernels/matmul.py); their numerics are tested through the
layers in test_bitlinear.py, against the torch reference."""

import pytest
import torch

pytest.importorskip("triton")

from lightning_hybrid.quant.kernels import matmul  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def test_matmul_operands_are_checked():
    codes = torch.zeros(4, 8, dtype=torch.int8, device=DEVICE)
    scale = torch.ones(1, device=DEVICE)
    with pytest.raises(TypeError, match=r"`a` must be an \(M, 8\) int8, fp32, fp16 or bf16 matrix, got torch.float64"):
        matmul.scaled_matmul(torch.zeros(2, 8, dtype=torch.float64, device=DEVICE), None, codes, scale)
    with pytest.raises(ValueError, match="`a_scale` goes with int8 `a`"):
        matmul.scaled_matmul(torch.zeros(2, 8, device=DEVICE), scale, codes, scale)
    with pytest.raises(ValueError, match=r"`b` must be \(N, 2\) weight codes or packed bytes, got torch.int8 \(4, 8\)"):
        matmul.packed_gemv(torch.zeros(2, 8, device=DEVICE), None, codes, scale, k=8)
    with pytest.raises(ValueError, match="`b_scale` needs 1 or 4 values"):
        matmul.scaled_matmul(torch.zeros(2, 8, device=DEVICE), None, codes, torch.ones(3, device=DEVICE))
