"""Matmuls with ternary (or integer) weight codes: y = (A @ codes^T) * a_scale * w_scale + bias.

A is either int8 activation codes with one scale per token (int32 accumulation on int8 tensor cores) or
a float activation (fp32 accumulation). The weight is either int8 codes (N, K), as the training
forward produces them, or the "2bit" layout of the export format (N, ceil(K / 4)) bytes, unpacked in
registers: code c + 1 sits in bits 2j..2j+1 of byte k // 4 for column k = 4 (k // 4) + j (quant/pack.py).
w_scale is one number (ternary, binary) or one per output row (integer bits).

`scaled_matmul` tiles (tokens x outputs) for tl.dot, the training forward and batched prefill;
`packed_gemv` gives each program a few output rows and streams their packed bytes once, for decode
(fewer than 16 tokens, below tl.dot's smallest tile). The pure-torch oracle is dequantize-then-F.linear
(BitLinear and PackedBitLinear on the torch path).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from lightning_hybrid.quant.kernels._launch import launch

# Tiles for (tokens, outputs, reduction) and the grouped launch order of Triton's matmul tutorial, keyed
# on (M rounded up to a power of two, N, K). The interpreter runs the first.
GEMM_CONFIGS = [
    triton.Config({"BLOCK_M": 32, "BLOCK_N": 64, "BLOCK_K": 64, "GROUP_M": 8}, num_stages=3, num_warps=4),
    triton.Config({"BLOCK_M": 16, "BLOCK_N": 128, "BLOCK_K": 128, "GROUP_M": 8}, num_stages=4, num_warps=4),
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 128, "GROUP_M": 8}, num_stages=4, num_warps=4),
    triton.Config({"BLOCK_M": 64, "BLOCK_N": 128, "BLOCK_K": 128, "GROUP_M": 8}, num_stages=4, num_warps=4),
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 64, "BLOCK_K": 128, "GROUP_M": 8}, num_stages=4, num_warps=4),
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 128, "BLOCK_K": 64, "GROUP_M": 8}, num_stages=3, num_warps=8),
    triton.Config({"BLOCK_M": 128, "BLOCK_N": 256, "BLOCK_K": 64, "GROUP_M": 8}, num_stages=3, num_warps=8),
    triton.Config({"BLOCK_M": 256, "BLOCK_N": 128, "BLOCK_K": 128, "GROUP_M": 8}, num_stages=3, num_warps=8),
]
# Output rows a program owns and packed bytes it reads a row per step (4 weights a byte), keyed on
# (N, K). Batch-1 decode is bound by the weight bytes: the configs trade rows a program (fewer, larger
# loads) against programs (enough to keep every SM streaming). The interpreter runs the first.
GEMV_CONFIGS = [
    triton.Config({"BLOCK_N": 16, "BLOCK_KB": 64}, num_warps=4),
    triton.Config({"BLOCK_N": 2, "BLOCK_KB": 512}, num_warps=4),
    triton.Config({"BLOCK_N": 4, "BLOCK_KB": 256}, num_warps=4),
    triton.Config({"BLOCK_N": 8, "BLOCK_KB": 128}, num_warps=4),
    triton.Config({"BLOCK_N": 8, "BLOCK_KB": 256}, num_warps=8),
    triton.Config({"BLOCK_N": 16, "BLOCK_KB": 128}, num_warps=4),
    triton.Config({"BLOCK_N": 16, "BLOCK_KB": 256}, num_warps=8),
    triton.Config({"BLOCK_N": 32, "BLOCK_KB": 64}, num_warps=4),
]


@triton.jit
def _tile_ids(M, N, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, GROUP_M: tl.constexpr):
    # Groups of GROUP_M row tiles sweep the column tiles together, so their weight tiles stay in L2.
    # int64 from here on: row * stride passes 2^31 for large activations and weights.
    pid = tl.program_id(0).to(tl.int64)
    tiles_n = tl.cdiv(N, BLOCK_N)
    group = pid // (GROUP_M * tiles_n)
    first_m = group * GROUP_M
    size_m = min(tl.cdiv(M, BLOCK_M) - first_m, GROUP_M)
    pid_m = first_m + (pid % (GROUP_M * tiles_n)) % size_m
    pid_n = (pid % (GROUP_M * tiles_n)) // size_m
    return pid_m * BLOCK_M + tl.arange(0, BLOCK_M), pid_n * BLOCK_N + tl.arange(0, BLOCK_N)


@triton.jit
def _weight_tile(b_ptr, rn, k, N, K, stride_bn, B_PACKED: tl.constexpr):
    # A (BLOCK_K, BLOCK_N) tile of int8 codes; masked entries are never multiplied by a nonzero A value.
    mask = (k < K)[:, None] & (rn < N)[None, :]
    if B_PACKED:
        byte = tl.load(b_ptr + rn[None, :] * stride_bn + (k // 4)[:, None], mask=mask, other=0).to(tl.int32)
        return ((byte >> ((k % 4) * 2)[:, None]) & 3).to(tl.int8) - 1
    return tl.load(b_ptr + rn[None, :] * stride_bn + k[:, None], mask=mask, other=0)


@triton.jit
def _scaled(
    acc,
    rm,
    rn,
    M,
    N,
    a_scale_ptr,
    b_scale_ptr,
    b_scale_stride,
    bias_ptr,
    HAS_A_SCALE: tl.constexpr,
    HAS_BIAS: tl.constexpr,
):
    # The epilogue in reference.scale_sums's order: sums * token scale * weight scale + bias, in fp32.
    out = acc.to(tl.float32)
    if HAS_A_SCALE:
        out *= tl.load(a_scale_ptr + rm, mask=rm < M, other=0.0)[:, None]
    out *= tl.load(b_scale_ptr + rn * b_scale_stride, mask=rn < N, other=0.0)[None, :]
    if HAS_BIAS:
        out += tl.load(bias_ptr + rn, mask=rn < N, other=0.0).to(tl.float32)[None, :]
    return out


@triton.jit
def _store(out, rm, rn, M, N, c_ptr, stride_cm):
    mask = (rm < M)[:, None] & (rn < N)[None, :]
    tl.store(c_ptr + rm[:, None] * stride_cm + rn[None, :], out.to(c_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _scaled_matmul(
    # operands
    a_ptr,
    a_scale_ptr,
    b_ptr,
    b_scale_ptr,
    bias_ptr,
    c_ptr,
    # sizes and strides
    M,
    N,
    K,
    M_BUCKET,
    stride_am,
    stride_bn,
    stride_cm,
    b_scale_stride,
    # variant
    A_INT: tl.constexpr,
    B_PACKED: tl.constexpr,
    HAS_A_SCALE: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    # tiles
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
):
    rm, rn = _tile_ids(M, N, BLOCK_M, BLOCK_N, GROUP_M)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.int32 if A_INT else tl.float32)
    for k0 in range(0, K, BLOCK_K):
        k = k0 + tl.arange(0, BLOCK_K)
        a = tl.load(a_ptr + rm[:, None] * stride_am + k[None, :], mask=(rm < M)[:, None] & (k < K)[None, :], other=0)
        b = _weight_tile(b_ptr, rn, k, N, K, stride_bn, B_PACKED)
        # [BLOCK_M, BLOCK_K] @ [BLOCK_K, BLOCK_N] -> [BLOCK_M, BLOCK_N]
        if A_INT:
            acc += tl.dot(a, b, out_dtype=tl.int32)
        else:  # codes are exact in any float type; "ieee" keeps fp32 inputs out of TF32
            acc += tl.dot(a, b.to(a.dtype), input_precision="ieee")
    out = _scaled(acc, rm, rn, M, N, a_scale_ptr, b_scale_ptr, b_scale_stride, bias_ptr, HAS_A_SCALE, HAS_BIAS)
    _store(out, rm, rn, M, N, c_ptr, stride_cm)


@triton.jit
def _packed_gemv(
    # the "2bit" weight bytes and their scales: what this kernel streams
    b_ptr,
    b_scale_ptr,
    # the activations (int8 codes with per-token scales, or floats)
    a_ptr,
    a_scale_ptr,
    # the bias and the output
    bias_ptr,
    c_ptr,
    # sizes (KB = packed bytes a row) and strides
    M,
    N,
    K,
    KB,
    stride_am,
    stride_cm,
    b_scale_stride,
    # variant and tiles
    HAS_A_SCALE: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_KB: tl.constexpr,
):
    rn = tl.program_id(0).to(tl.int64) * BLOCK_N + tl.arange(0, BLOCK_N)  # int64: rn * KB passes 2^31
    m = tl.program_id(1).to(tl.int64)
    # fp32 sums of int8 codes stay exact integers while K * 127 < 2^24 (K below 132,000)
    acc = tl.zeros((BLOCK_N,), dtype=tl.float32)
    for kb0 in range(0, KB, BLOCK_KB):
        kb = kb0 + tl.arange(0, BLOCK_KB)
        mask = (rn < N)[:, None] & (kb < KB)[None, :]
        byte = tl.load(b_ptr + rn[:, None] * KB + kb[None, :], mask=mask, other=0).to(tl.int32)
        for j in tl.static_range(4):  # the j-th code of every byte meets activation column 4 kb + j
            k = kb * 4 + j
            a = tl.load(a_ptr + m * stride_am + k, mask=k < K, other=0).to(tl.float32)
            codes = ((byte >> (2 * j)) & 3) - 1
            # [BLOCK_N, BLOCK_KB] . [BLOCK_KB] -> [BLOCK_N]
            acc += tl.sum(codes.to(tl.float32) * a[None, :], axis=1)
    rm = m + tl.arange(0, 1)
    out = _scaled(acc[None, :], rm, rn, M, N, a_scale_ptr, b_scale_ptr, b_scale_stride, bias_ptr, HAS_A_SCALE, HAS_BIAS)
    _store(out, rm, rn, M, N, c_ptr, stride_cm)


_scaled_matmul_tuned = triton.autotune(configs=GEMM_CONFIGS, key=["M_BUCKET", "N", "K"])(_scaled_matmul)
_packed_gemv_tuned = triton.autotune(configs=GEMV_CONFIGS, key=["N", "K"])(_packed_gemv)
ACT_DTYPES = (torch.int8, torch.float32, torch.float16, torch.bfloat16)


def _check_operands(a, a_scale, b, b_scale, bias, k, k_bytes):
    if a.dim() != 2 or a.dtype not in ACT_DTYPES or a.shape[1] != k:
        raise TypeError(f"`a` must be an (M, {k}) int8, fp32, fp16 or bf16 matrix, got {a.dtype} {tuple(a.shape)}.")
    if (a.dtype == torch.int8) != (a_scale is not None):
        raise ValueError("`a_scale` goes with int8 `a` (per-token codes) and only with it.")
    if b.dim() != 2 or b.dtype not in (torch.int8, torch.uint8) or b.shape[1] != k_bytes:
        raise ValueError(f"`b` must be (N, {k_bytes}) weight codes or packed bytes, got {b.dtype} {tuple(b.shape)}.")
    if b_scale.numel() not in (1, b.shape[0]) or (bias is not None and bias.numel() != b.shape[0]):
        raise ValueError(f"`b_scale` needs 1 or {b.shape[0]} values and `bias` {b.shape[0]}.")


def _operands(a, a_scale, b, b_scale, bias, out_dtype):
    n = b.shape[0]
    c = torch.empty(a.shape[0], n, dtype=out_dtype, device=a.device)
    scale = b_scale.reshape(-1).float().contiguous()
    a_scale = scale if a_scale is None else a_scale.float().contiguous()  # placeholders are never read
    bias_arg = scale if bias is None else bias.contiguous()
    return c, a_scale, scale, bias_arg


def _pointers(a, a_scale, b, b_scale, bias, c) -> dict[str, torch.Tensor]:
    """The operand arguments both kernels take (placeholders stand where a scale or the bias is absent)."""
    return {"a_ptr": a, "a_scale_ptr": a_scale, "b_ptr": b, "b_scale_ptr": b_scale, "bias_ptr": bias, "c_ptr": c}


def scaled_matmul(
    a, a_scale, b, b_scale, bias=None, out_dtype=torch.float32, packed: bool = False, k: int | None = None
):
    """(A @ codes(b)^T) * a_scale[:, None] * b_scale + bias as an (M, N) matrix of `out_dtype`.

    b: int8 codes (N, K), or with packed=True uint8 "2bit" bytes (N, ceil(k / 4)) for K = k.
    """
    a, b = a.contiguous(), b.contiguous()
    m, k = a.shape[0], a.shape[-1] if k is None else k
    _check_operands(a, a_scale, b, b_scale, bias, k, -(-k // 4) if packed else k)
    c, a_scale_arg, scale, bias_arg = _operands(a, a_scale, b, b_scale, bias, out_dtype)
    n = b.shape[0]
    if m and n:  # [M, K] @ [N, K]^T -> [M, N]
        grid = lambda meta: (triton.cdiv(m, meta["BLOCK_M"]) * triton.cdiv(n, meta["BLOCK_N"]),)  # noqa: E731
        launch(
            _scaled_matmul,
            _scaled_matmul_tuned,
            GEMM_CONFIGS,
            grid,
            **_pointers(a, a_scale_arg, b, scale, bias_arg, c),
            M=m,
            N=n,
            K=k,
            M_BUCKET=triton.next_power_of_2(m),
            stride_am=a.stride(0),
            stride_bn=b.stride(0),
            stride_cm=c.stride(0),
            b_scale_stride=int(scale.numel() > 1),
            A_INT=a.dtype == torch.int8,
            B_PACKED=packed,
            HAS_A_SCALE=a_scale is not None,
            HAS_BIAS=bias is not None,
        )
    return c


def packed_gemv(a, a_scale, b, b_scale, k: int, bias=None, out_dtype=torch.float32):
    """scaled_matmul(..., packed=True) for a few tokens: each program streams a few rows' packed bytes."""
    a, b = a.contiguous(), b.contiguous()
    _check_operands(a, a_scale, b, b_scale, bias, k, -(-k // 4))
    c, a_scale_arg, scale, bias_arg = _operands(a, a_scale, b, b_scale, bias, out_dtype)
    m, n = a.shape[0], b.shape[0]
    if m and n:  # [M, K] @ [N, K]^T -> [M, N]
        grid = lambda meta: (triton.cdiv(n, meta["BLOCK_N"]), m)  # noqa: E731
        launch(
            _packed_gemv,
            _packed_gemv_tuned,
            GEMV_CONFIGS,
            grid,
            **_pointers(a, a_scale_arg, b, scale, bias_arg, c),
            M=m,
            N=n,
            K=k,
            KB=b.shape[1],
            stride_am=a.stride(0),
            stride_cm=c.stride(0),
            b_scale_stride=int(scale.numel() > 1),
            HAS_A_SCALE=a_scale is not None,
            HAS_BIAS=bias is not None,
        )
    return c
