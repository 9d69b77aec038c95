"""BitLinear and PackedBitLinear forward passes on the Triton kernels.

Training (`bit_linear`): the weight becomes int8 codes and a scale, the input int8 codes and per-token
scales, and their int8 matmul applies both scales and the bias in its epilogue, so no full-precision
copy of the quantized weight is made in the forward pass. The backward pass is the straight-through
estimator of quant/reference.py (`linear_backward`): grad_x = grad @ Q(W) and grad_W = grad^T @ Q(x),
with Q(x) rebuilt from the saved int8 codes (a quarter of an fp32 input's memory) and Q(W) dequantized
for that one matmul. The epilogue applies the scales in reference.scale_sums's order.
Activations above 8 bits or not quantized at all meet the weight codes in a float matmul instead.
"""

from __future__ import annotations

import torch

from lightning_hybrid.quant import reference as ref
from lightning_hybrid.quant.kernels import matmul, quantize
from lightning_hybrid.quant.kernels._launch import check_float, rows_of

# Fewer tokens than tl.dot's smallest tile: the GEMV kernel, one program per few output rows and token.
GEMV_MAX_TOKENS = 15


def weight_codes(weight: torch.Tensor, bits: float) -> tuple[torch.Tensor, torch.Tensor]:
    """int8 codes and fp32 scale (0-d, or (out, 1) for integer bits): Triton for ternary, torch otherwise."""
    if bits == 1.58:
        return quantize.ternary_codes(weight)
    return ref.weight_codes(weight, bits)


def activation_operand(rows: torch.Tensor, act_bits: int | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(int8 codes, per-token scales) for act_bits <= 8; the fake-quantized (or untouched) rows otherwise."""
    if act_bits is None:
        return rows, None
    if act_bits <= 8:
        return quantize.activation_codes(rows, act_bits)
    return quantize.quantize_activation(rows, act_bits), None


def forward_and_saved(x, weight, bias, bits, act_bits) -> tuple[torch.Tensor, ref.LinearSaved]:
    """The output and what the straight-through backward needs (kernels/ops.py returns both)."""
    rows = rows_of(check_float(x, "x"))
    codes, scale = weight_codes(weight, bits)
    a, a_scale = activation_operand(rows, act_bits)
    out = matmul.scaled_matmul(a, a_scale, codes, scale, bias, ref.output_dtype(x))  # [M, K] @ [N, K]^T -> [M, N]
    return out.reshape(*x.shape[:-1], weight.shape[0]), ref.LinearSaved(a, a_scale, codes, scale)


class _BitLinearFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, bits, act_bits):
        out, saved = forward_and_saved(x, weight, bias, bits, act_bits)
        ctx.save_for_backward(*saved)
        ctx.meta = ref.LinearMeta(x.dtype, x.shape, weight.dtype)
        return out

    @staticmethod
    def backward(ctx, grad):
        saved = ref.LinearSaved(*ctx.saved_tensors)
        return *ref.linear_backward(grad, saved, ctx.meta, ctx.needs_input_grad[:3]), None, None


def bit_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, bits: float, act_bits: int | None):
    """BitLinear's forward at full quantization (lam = 1) on the kernels, with straight-through gradients."""
    return _BitLinearFunction.apply(x, weight, bias, bits, act_bits)


def packed_linear(x, packed, scale, bias, in_features: int, act_bits: int | None) -> torch.Tensor:
    """PackedBitLinear's forward straight from the "2bit" bytes (N, ceil(in_features / 4)); no gradient."""
    rows = rows_of(check_float(x.detach(), "x"))
    a, a_scale = activation_operand(rows, act_bits)
    kernel = matmul.packed_gemv if rows.shape[0] <= GEMV_MAX_TOKENS else _packed_gemm
    out = kernel(a, a_scale, packed, scale, in_features, bias, ref.output_dtype(x))  # [M, K] @ [N, K]^T -> [M, N]
    return out.reshape(*x.shape[:-1], packed.shape[0])


def _packed_gemm(a, a_scale, packed, scale, k, bias, out_dtype):
    return matmul.scaled_matmul(a, a_scale, packed, scale, bias, out_dtype, packed=True, k=k)
