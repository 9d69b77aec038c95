"""The packed layer's kernels as torch.library custom ops, for code under torch.compile.

Dynamo cannot trace a ctypes call (the C kernel) nor, without graph breaks, safe dispatch's trials and
Triton's autotuning. As custom ops they are one opaque node of the graph each: Dynamo sees the op and its
fake (the output's shape and dtype), and at run time the op runs the same kernel as eager code, through
kernels/guard.py, falling back to the torch reference inside the op where the kernel is not trusted. So a
compiled packed model computes what the eager one does, bit for bit on the CPU.

  * lightning_hybrid::packed_linear_cpu: the C kernel (kernels/native.py); fp32 out.
  * lightning_hybrid::packed_linear_triton: the Triton kernels on "2bit" bytes (kernels/bitlinear.py).
No gradient flows through either (the packed layer is for inference).
"""

from __future__ import annotations

import torch

from lightning_hybrid.quant import formats
from lightning_hybrid.quant.kernels import guard


def _codes(weights: torch.Tensor, in_features: int) -> torch.Tensor:
    """int8 codes from the ops' weights: int8 codes already, or "2bit" bytes."""
    if weights.dtype == torch.int8:
        return weights
    return formats.layout("2bit").decoded(weights, (weights.shape[0], in_features))


@torch.library.custom_op("lightning_hybrid::packed_linear_cpu", mutates_args=())
def packed_linear_cpu(
    x: torch.Tensor,
    weights: torch.Tensor,
    w_scale: torch.Tensor,
    bias: torch.Tensor | None,
    in_features: int,
    bits: float,
    act_bits: int,
) -> torch.Tensor:
    """The packed layer's CPU forward for fp32 x (..., in): the C kernel, else the torch reference."""
    from lightning_hybrid.quant.kernels.native import Int8Linear

    k = in_features if weights.dtype == torch.uint8 else None
    out = guard.native_int8_linear(x, lambda: Int8Linear(weights, w_scale, bias, act_bits, k), act_bits)
    if out is not None:
        return out
    rows = x.reshape(-1, in_features)
    want = guard.reference_packed(rows, _codes(weights, in_features), w_scale, bias, bits, act_bits, torch.float32)
    return want.reshape(*x.shape[:-1], weights.shape[0])


@packed_linear_cpu.register_fake
def _(x, weights, w_scale, bias, in_features, bits, act_bits):
    return x.new_empty((*x.shape[:-1], weights.shape[0]), dtype=torch.float32)


@torch.library.custom_op("lightning_hybrid::packed_linear_triton", mutates_args=())
def packed_linear_triton(
    x: torch.Tensor,
    packed: torch.Tensor,
    scale: torch.Tensor,
    bias: torch.Tensor | None,
    in_features: int,
    bits: float,
    act_bits: int | None,
    weight_dtype: torch.dtype,
    out_dtype: torch.dtype,
) -> torch.Tensor:
    """The packed layer's forward on the Triton kernels ("2bit" bytes), else the torch reference; the
    output in `out_dtype` (the caller's ref.output_dtype(x), which autocast decides outside the op)."""
    out = guard.packed_linear(x, packed, scale, bias, in_features, bits, act_bits, weight_dtype)
    if out is None:
        rows = x.reshape(-1, in_features)
        codes = _codes(packed, in_features)
        out = guard.reference_packed(rows, codes, scale, bias, bits, act_bits, weight_dtype)
        out = out.reshape(*x.shape[:-1], packed.shape[0])
    return out.to(out_dtype)


@packed_linear_triton.register_fake
def _(x, packed, scale, bias, in_features, bits, act_bits, weight_dtype, out_dtype):
    return x.new_empty((*x.shape[:-1], packed.shape[0]), dtype=out_dtype)
