"""The packed layer's kernels as torch.library custom ops, for code under torch.compile.

Dynamo cannot trace a ctypes call (the C kernel) nor, without graph breaks, safe dispatch's trials and
Triton's autotuning. As custom ops they are one opaque node of the graph each: Dynamo sees the op and its
fake (the output's shape and dtype), and at run time the op runs the same kernel as eager code, through
kernels/guard.py, falling back to the torch reference inside the op where the kernel is not trusted. So a
compiled packed model computes what the eager one does, bit for bit on the CPU.

  * lightning_hybrid::packed_linear_cpu: the C kernel (kernels/native.py); fp32 out.
  * lightning_hybrid::packed_linear_triton: the Triton kernels on "2bit" bytes (kernels/bitlinear.py).
  * lightning_hybrid::bit_linear_triton: BitLinear's training forward on the Triton kernels, with its
    straight-through backward (reference.linear_backward) registered as the op's autograd formula.
The packed ops pass no gradient (the packed layer is for inference).
"""

from __future__ import annotations

import torch

from lightning_hybrid.quant import formats
from lightning_hybrid.quant import reference as ref
from lightning_hybrid.quant.kernels import guard


def _reference(x, weights, scale, bias, in_features: int, bits: float, act_bits, weight_dtype) -> torch.Tensor:
    """The packed layer's torch reference for x (..., in) from the ops' weights: int8 codes, or "2bit" bytes."""
    codes = weights
    if weights.dtype != torch.int8:
        codes = formats.layout("2bit").decoded(weights, (weights.shape[0], in_features))
    out = guard.reference_packed(x.reshape(-1, in_features), codes, scale, bias, bits, act_bits, weight_dtype)
    return out.reshape(*x.shape[:-1], weights.shape[0])


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
    return _reference(x, weights, w_scale, bias, in_features, bits, act_bits, torch.float32)


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
        out = _reference(x, packed, scale, bias, in_features, bits, act_bits, weight_dtype)
    return out.to(out_dtype)


@packed_linear_triton.register_fake
def _(x, packed, scale, bias, in_features, bits, act_bits, weight_dtype, out_dtype):
    return x.new_empty((*x.shape[:-1], packed.shape[0]), dtype=out_dtype)


# BitLinear's training forward on the Triton kernels. The op returns the output and what the backward
# needs (reference.LinearSaved: activation operand and scales, weight codes and scale), so that its
# autograd formula, reference.linear_backward, is plain torch that AOT autograd traces.
_NO_SCALE = (0,)  # the activation scale's placeholder where activations are not int8 codes


def _int8_activations(act_bits: int | None) -> bool:
    return act_bits is not None and act_bits <= 8


@torch.library.custom_op("lightning_hybrid::bit_linear_triton", mutates_args=())
def bit_linear_triton(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    bits: float,
    act_bits: int | None,
    out_dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(output, activation operand, its scales, weight codes, weight scale) of BitLinear at lam = 1: the
    Triton kernels where safe dispatch trusts them, else the torch reference with the same layout."""
    result = None
    if guard.bit_linear_trusted(x, weight, bits, act_bits):
        from lightning_hybrid.quant.kernels.bitlinear import forward_and_saved

        key = guard.bit_linear_key(x, weight, bits, act_bits)
        result = guard.call("bit_linear", key, lambda: forward_and_saved(x, weight, bias, bits, act_bits))
    out, saved = result if result is not None else _reference_forward(x, weight, bias, bits, act_bits)
    a_scale = saved.input_scale if saved.input_scale is not None else x.new_empty(_NO_SCALE, dtype=torch.float32)
    # unquantized activations are x itself, which an op may not return: the backward saves the input
    a = x.new_empty(_NO_SCALE) if act_bits is None else saved.inputs
    return out.to(out_dtype), a, a_scale, saved.weight_codes, saved.weight_scale


def _reference_forward(x, weight, bias, bits, act_bits):
    """The reference's forward in the Triton path's layout (int8 activation codes)."""
    rows = x.reshape(-1, x.shape[-1])
    codes, scale = ref.weight_codes(weight, bits)
    if _int8_activations(act_bits):
        a, a_scale = ref.activation_codes(rows, act_bits)
        sums = ref.code_sums(a, codes, ref.max_code(bits))
        out = ref.scale_sums(sums, a_scale, scale, bias, ref.output_dtype(x))
    else:
        a, a_scale = (rows if act_bits is None else ref.quantize_activation(rows, act_bits)), None
        out = torch.nn.functional.linear(a, ref.dequantize(codes, scale, weight.dtype), bias)
    return out.reshape(*x.shape[:-1], weight.shape[0]), ref.LinearSaved(a, a_scale, codes, scale)


@bit_linear_triton.register_fake
def _(x, weight, bias, bits, act_bits, out_dtype):
    rows = x.reshape(-1, x.shape[-1])
    out = x.new_empty((*x.shape[:-1], weight.shape[0]), dtype=out_dtype)
    int8 = _int8_activations(act_bits)
    a = rows.new_empty(_NO_SCALE if act_bits is None else rows.shape, dtype=torch.int8 if int8 else x.dtype)
    a_scale = rows.new_empty((rows.shape[0],) if int8 else _NO_SCALE, dtype=torch.float32)
    codes = weight.new_empty(weight.shape, dtype=torch.int8)
    per_row = formats.width(bits).per_row_scale
    scale = weight.new_empty((weight.shape[0], 1) if per_row else (), dtype=torch.float32)
    return out, a, a_scale, codes, scale


def _setup_context(ctx, inputs, output):
    x, weight, _, _, act_bits, _ = inputs
    _, a, a_scale, codes, scale = output
    ctx.save_for_backward(x.reshape(-1, x.shape[-1]) if act_bits is None else a, a_scale, codes, scale)
    ctx.int8 = _int8_activations(act_bits)
    ctx.meta = ref.LinearMeta(x.dtype, x.shape, weight.dtype)


def _backward(ctx, grad, *unused):
    a, a_scale, codes, scale = ctx.saved_tensors
    saved = ref.LinearSaved(a, a_scale if ctx.int8 else None, codes, scale)
    grads = ref.linear_backward(grad, saved, ctx.meta, ctx.needs_input_grad[:3])
    return *grads, None, None, None


bit_linear_triton.register_autograd(_backward, setup_context=_setup_context)


def bit_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, bits: float, act_bits: int | None):
    """BitLinear's forward at lam = 1 on the Triton kernels, for compiled code (straight-through gradients)."""
    return bit_linear_triton(x, weight, bias, bits, act_bits, ref.output_dtype(x))[0]
