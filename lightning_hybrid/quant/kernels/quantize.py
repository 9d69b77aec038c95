"""Fused quantizers in Triton: absmean ternary weights (BitNet b1.58) and per-token absmax activations.

Same maths as quant/reference.py (the spec): `ternary_codes` and `quantize_activation`. Weights take
two passes: block partial sums of |W| (summed and divided in fp32 by torch: a few hundred numbers),
then one round-clip-scale pass writing the int8 codes and the dequantized weight. Activations take one
program per row (the row is held in registers, BLOCK_N >= its length).
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

from lightning_hybrid.quant.reference import EPS

# Autotune configs, keyed on the number of weight elements: elements a program handles, warps.
WEIGHT_CONFIGS = [triton.Config({"BLOCK": 1024}, num_warps=4), triton.Config({"BLOCK": 4096}, num_warps=8)]


@triton.jit
def _rint(x):
    # Round half to even as torch.round does: adding and subtracting 1.5 * 2^23 leaves the nearest
    # integer for |x| < 2^22; larger |x| only meet the clip to [-1, 1], which they pass either way.
    big = 12582912.0
    return (x + big) - big


@triton.jit
def _abs_partial_sums(w_ptr, out_ptr, numel, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    w = tl.load(w_ptr + offs, mask=offs < numel, other=0.0).to(tl.float32)
    tl.store(out_ptr + pid, tl.sum(tl.abs(w), axis=0))


@triton.jit
def _ternary_round(w_ptr, scale_ptr, codes_ptr, q_ptr, numel, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    s = tl.load(scale_ptr)
    w = tl.load(w_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    c = tl.minimum(tl.maximum(_rint(w / s), -1.0), 1.0)
    tl.store(codes_ptr + offs, c.to(tl.int8), mask=mask)
    tl.store(q_ptr + offs, (c * s).to(q_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _token_absmax(x_ptr, out_ptr, n_cols, q, eps, BLOCK_N: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK_N)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * n_cols + cols, mask=mask, other=0.0).to(tl.float32)
    g = tl.maximum(tl.max(tl.abs(x), axis=0), eps)
    y = tl.minimum(tl.maximum(_rint(x * (q / g)), -q), q) * (g / q)
    tl.store(out_ptr + row * n_cols + cols, y.to(out_ptr.dtype.element_ty), mask=mask)


# Autotuning times the configs on the device; the interpreter (CPU CI) has none to time, so it runs the
# first config.
_ternary_round_tuned = triton.autotune(configs=WEIGHT_CONFIGS, key=["numel"])(_ternary_round)


def _interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def _check(t: torch.Tensor, name: str) -> torch.Tensor:
    if t.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        raise TypeError(f"`{name}` must be fp32, fp16 or bf16, got {t.dtype}.")
    return t.contiguous()


# The partial-sum pass uses one fixed block: its grid sizes the buffer the sums go to.
SUM_BLOCK = 4096


def ternary_codes(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(int8 codes, fp32 0-d scale, dequantized weight in w's dtype), as reference.ternary_codes."""
    w = _check(w.detach(), "w")
    numel = w.numel()
    partial = torch.empty(triton.cdiv(numel, SUM_BLOCK), dtype=torch.float32, device=w.device)
    _abs_partial_sums[(len(partial),)](w, partial, numel, BLOCK=SUM_BLOCK)
    scale = (partial.sum() / max(numel, 1)).clamp_min(EPS)
    codes = torch.empty_like(w, dtype=torch.int8)
    quantized = torch.empty_like(w)
    args = (w, scale.reshape(1), codes, quantized, numel)
    if _interpreted():
        block = WEIGHT_CONFIGS[0].kwargs["BLOCK"]
        _ternary_round[(triton.cdiv(numel, block),)](*args, BLOCK=block)
    else:
        _ternary_round_tuned[lambda meta: (triton.cdiv(numel, meta["BLOCK"]),)](*args)
    return codes, scale, quantized


def quantize_activation(x: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Per-token absmax fake quantization of the last dimension, as reference.quantize_activation."""
    x = _check(x.detach(), "x")
    rows = x.reshape(-1, x.shape[-1]) if x.numel() else x.reshape(0, max(x.shape[-1], 1))
    out = torch.empty_like(rows)
    if rows.numel():
        block = triton.next_power_of_2(rows.shape[1])
        _token_absmax[(rows.shape[0],)](rows, out, rows.shape[1], float(2 ** (bits - 1) - 1), EPS, BLOCK_N=block)
    return out.reshape(x.shape)
