"""Fused quantizers in Triton: absmean ternary weights (BitNet b1.58) and per-token absmax activations.

Same maths as quant/reference.py (the spec): `ternary_codes` and `quantize_activation`. Weights take
two passes: block partial sums of |W| (summed and divided in fp32 by torch: a few hundred numbers),
then one round-clip-scale pass writing the int8 codes (and the dequantized weight when asked).
Activations take one program per token (the row is held in registers, BLOCK_N >= its length) and give
either the fake-quantized row or its int8 codes and scale, the operands of the int8 matmul.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from lightning_hybrid.quant.kernels._launch import check_float, launch, rows_of
from lightning_hybrid.quant.reference import EPS

# Autotune configs, keyed on the number of weight elements: elements a program handles, warps. The
# interpreter runs the first.
WEIGHT_CONFIGS = [triton.Config({"BLOCK": 1024}, num_warps=4), triton.Config({"BLOCK": 4096}, num_warps=8)]


@triton.jit
def _rint(x):
    # Round half to even as torch.round does: adding and subtracting 1.5 * 2^23 leaves the nearest
    # integer for |x| < 2^22; larger |x| only meet the clip to [-1, 1], which they pass either way.
    big = 12582912.0
    return (x + big) - big


@triton.jit
def _abs_partial_sums(w_ptr, out_ptr, numel, BLOCK: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)  # int64 before the offsets: a weight may pass 2^31 elements
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    w = tl.load(w_ptr + offs, mask=offs < numel, other=0.0).to(tl.float32)
    tl.store(out_ptr + pid, tl.sum(tl.abs(w), axis=0))


@triton.jit
def _ternary_round(w_ptr, scale_ptr, codes_ptr, q_ptr, numel, DEQUANTIZE: tl.constexpr, BLOCK: tl.constexpr):
    pid = tl.program_id(0).to(tl.int64)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    s = tl.load(scale_ptr)
    w = tl.load(w_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    c = tl.minimum(tl.maximum(_rint(w / s), -1.0), 1.0)
    tl.store(codes_ptr + offs, c.to(tl.int8), mask=mask)
    if DEQUANTIZE:
        tl.store(q_ptr + offs, (c * s).to(q_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _token_absmax(x_ptr, out_ptr, scale_ptr, n_cols, q, eps, CODES: tl.constexpr, BLOCK_N: tl.constexpr):
    # CODES: write int8 codes and the row's scale g / q; otherwise the fake-quantized row codes * g / q.
    row = tl.program_id(0).to(tl.int64)  # row * n_cols passes 2^31 on long prompts
    cols = tl.arange(0, BLOCK_N)
    mask = cols < n_cols
    x = tl.load(x_ptr + row * n_cols + cols, mask=mask, other=0.0).to(tl.float32)
    g = tl.maximum(tl.max(tl.abs(x), axis=0), eps)
    c = tl.minimum(tl.maximum(_rint(x * (q / g)), -q), q)
    if CODES:
        tl.store(out_ptr + row * n_cols + cols, c.to(tl.int8), mask=mask)
        tl.store(scale_ptr + row, g / q)
    else:
        tl.store(out_ptr + row * n_cols + cols, (c * (g / q)).to(out_ptr.dtype.element_ty), mask=mask)


_ternary_round_tuned = triton.autotune(configs=WEIGHT_CONFIGS, key=["numel"])(_ternary_round)

# The partial-sum pass uses one fixed block: its grid sizes the buffer the sums go to.
SUM_BLOCK = 4096


def _ternary(w: torch.Tensor, dequantize: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    w = check_float(w.detach(), "w")
    numel = w.numel()
    partial = torch.empty(triton.cdiv(numel, SUM_BLOCK), dtype=torch.float32, device=w.device)
    _abs_partial_sums[(len(partial),)](w_ptr=w, out_ptr=partial, numel=numel, BLOCK=SUM_BLOCK)
    scale = (partial.sum() / max(numel, 1)).clamp_min(EPS)
    codes = torch.empty_like(w, dtype=torch.int8)
    quantized = torch.empty_like(w) if dequantize else codes  # codes: a placeholder the kernel never writes
    grid = lambda meta: (triton.cdiv(numel, meta["BLOCK"]),)  # noqa: E731
    operands = {"w_ptr": w, "scale_ptr": scale.reshape(1), "codes_ptr": codes, "q_ptr": quantized}
    launch(_ternary_round, _ternary_round_tuned, WEIGHT_CONFIGS, grid, **operands, numel=numel, DEQUANTIZE=dequantize)
    return codes, scale, quantized if dequantize else None


def ternary_codes(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(int8 codes, fp32 0-d scale), as reference.ternary_codes."""
    codes, scale, _ = _ternary(w, dequantize=False)
    return codes, scale


def quantize_ternary(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(int8 codes, fp32 0-d scale, codes * scale in w's dtype), in the same two passes."""
    return _ternary(w, dequantize=True)


def _warps(block: int) -> int:
    # A token row lives in registers: about 32 fp32 values a thread keeps them out of local memory.
    return min(max(block // 1024, 1) * 4, 16)


def quantize_activation(x: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Per-token absmax fake quantization of the last dimension, as reference.quantize_activation."""
    x = check_float(x.detach(), "x")
    rows = rows_of(x)
    out = torch.empty_like(rows)
    if rows.numel():
        block = triton.next_power_of_2(rows.shape[1])
        q = float(2 ** (bits - 1) - 1)
        operands = {"x_ptr": rows, "out_ptr": out, "scale_ptr": out}  # no scales written: a placeholder
        _token_absmax[(rows.shape[0],)](
            **operands, n_cols=rows.shape[1], q=q, eps=EPS, CODES=False, BLOCK_N=block, num_warps=_warps(block)
        )
    return out.reshape(x.shape)


def activation_codes(x: torch.Tensor, bits: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token int8 codes (tokens, features) and fp32 scales g / Q (tokens,), bits <= 8.

    codes * scale[:, None] is reference.quantize_activation(x, bits) in fp32, bit for bit.
    """
    if not 2 <= bits <= 8:
        raise ValueError(f"`bits` must be in [2, 8] for int8 activation codes, got {bits!r}.")
    rows = rows_of(check_float(x.detach(), "x"))
    codes = torch.empty_like(rows, dtype=torch.int8)
    scale = torch.empty(rows.shape[0], dtype=torch.float32, device=rows.device)
    if rows.numel():
        block = triton.next_power_of_2(rows.shape[1])
        q = float(2 ** (bits - 1) - 1)
        operands = {"x_ptr": rows, "out_ptr": codes, "scale_ptr": scale}
        _token_absmax[(rows.shape[0],)](
            **operands, n_cols=rows.shape[1], q=q, eps=EPS, CODES=True, BLOCK_N=block, num_warps=_warps(block)
        )
    return codes, scale
