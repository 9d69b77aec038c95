"""Pure-torch quantizers: the spec that every fast path is tested against.

Weights
  * ternary, BitNet b1.58 (Ma et al. 2024, "The Era of 1-bit LLMs", arXiv:2402.17764, eq. 1-3):
    s = mean|W|,  W_q = clamp(round(W / s), -1, 1) * s
  * binary, BitNet (Wang et al. 2023, "BitNet: Scaling 1-bit Transformers", arXiv:2310.11453, eq. 1-3):
    W_q = sign(W - mean W) * mean|W|, with sign(z) = +1 for z > 0 and -1 otherwise (the paper's Sign).
  * 2, 4 and 8 bits (mixed-precision plans): symmetric absmax per output channel (row i), the common
    integer weight quantizer (e.g. LLM.int8, Dettmers et al. 2022, sec. 3.1, per row):
    Q = 2^(b-1) - 1,  s_i = max_j |W_ij| / Q,  W_q = clamp(round(W / s_i), -Q, Q) * s_i.
    Being symmetric, 2 bits give the levels {-1, 0, 1} x s_i (Q = 1): ternary codes with a per-row
    max scale, which zeroes every weight below max/2 where absmean ternary keeps more of them.
Activations
  * 8-bit per-token absmax (both papers): g = max|x| over the last dim,
    x_q = clamp(round(x * Q / g), -Q, Q) * g / Q with Q = 2^(b-1) - 1.
Training uses the straight-through estimator (Bengio et al. 2013): the forward pass sees the quantized
tensor, the backward pass passes the gradient to the full-precision latent tensor unchanged, so latent
weights, gradients and optimizer state all stay in full precision.

Every function computes in fp32 and returns the input's dtype, so bf16 training quantizes the same
numbers as fp32 training would.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

from lightning_hybrid.quant import formats
from lightning_hybrid.utils.checks import integer

# Guards the scale of an all-zero tensor (or all-zero token); BitNet b1.58 writes it as gamma + eps.
EPS = 1e-5

# The widths, their quantizer kinds and their largest codes are quant/formats.py's table.
SUPPORTED_BITS = formats.SUPPORTED_BITS
INTEGER_BITS = formats.INTEGER_BITS  # symmetric absmax per output channel
check_bits = formats.check_bits


def check_act_bits(act_bits: int | None) -> int | None:
    """Return `act_bits` (an int in [2, 16] or None), or raise a ValueError that names the argument."""
    return integer("act_bits", act_bits, 2, 16, allowed=(None,))


def weight_scale(w: torch.Tensor) -> torch.Tensor:
    """Per-tensor absmean scale mean|W| in fp32, guarded away from zero (a 0-d tensor)."""
    return w.detach().float().abs().mean().clamp_min(EPS)


def ternary_codes(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """BitNet b1.58 codes in {-1, 0, 1} (int8) and the fp32 scale s, with W_q = codes * s."""
    s = weight_scale(w)
    codes = torch.clamp(torch.round(w.detach().float() / s), -1, 1).to(torch.int8)
    return codes, s


def binary_codes(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """BitNet codes in {-1, 1} (int8) and the fp32 scale mean|W|, with W_q = codes * scale."""
    wf = w.detach().float()
    codes = torch.where(wf - wf.mean() > 0, 1, -1).to(torch.int8)
    return codes, weight_scale(w)


def integer_codes(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric absmax codes in [-Q, Q] (int8), Q = 2^(bits-1) - 1, and per-row fp32 scales (out, 1)."""
    q = 2 ** (bits - 1) - 1
    wf = w.detach().float()
    s = wf.abs().amax(dim=1, keepdim=True).clamp_min(EPS) / q
    codes = torch.clamp(torch.round(wf / s), -q, q).to(torch.int8)
    return codes, s


def weight_codes(w: torch.Tensor, bits: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes and scale for `bits`: a 0-d scale for 1 and 1.58 bits, one per row (out, 1) otherwise."""
    width = formats.width(bits)
    if width.quantizer == "binary":
        return binary_codes(w)
    if width.quantizer == "ternary":
        return ternary_codes(w)
    return integer_codes(w, int(width.bits))


def dequantize(codes: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """codes * scale, multiplied in fp32 so every path that dequantizes gets the same bits."""
    return (codes.float() * scale.float()).to(dtype)


def quantize_weight(w: torch.Tensor, bits: float) -> torch.Tensor:
    """Fake-quantized weight Q(W) in W's dtype (no gradient; see `ste`)."""
    codes, s = weight_codes(w, bits)
    return dequantize(codes, s, w.dtype)


def quantize_activation(x: torch.Tensor, bits: int = 8) -> torch.Tensor:
    """Per-token absmax fake quantization of the last dimension to `bits` bits (no gradient)."""
    levels, scale = activation_levels(x, bits)
    return (levels * scale.unsqueeze(-1)).to(x.dtype)


def activation_codes(x: torch.Tensor, bits: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """`quantize_activation` factored for integer matmuls: int8 codes (bits <= 8) and fp32 scales g / Q
    of shape x.shape[:-1], with codes * scale[..., None] == quantize_activation(x, bits) in fp32."""
    if not 2 <= bits <= 8:
        raise ValueError(f"`bits` must be in [2, 8] for int8 activation codes, got {bits!r}.")
    levels, scale = activation_levels(x, bits)
    return levels.to(torch.int8), scale


def activation_levels(x: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`activation_codes` with the codes left as fp32 integers (what a float matmul consumes)."""
    q = 2 ** (bits - 1) - 1
    xf = x.detach().float()
    g = xf.abs().amax(dim=-1, keepdim=True).clamp_min(EPS)
    return torch.clamp(torch.round(xf * (q / g)), -q, q), (g / q).squeeze(-1)


def max_code(bits: float) -> int:
    """The largest |code| of a weight quantizer: 1 for ternary, binary and 2 bits, else 2^(bits-1) - 1."""
    return formats.width(bits).max_code


def output_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype F.linear(x, ...) would return: the autocast dtype inside autocast, else x's."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return x.dtype


def scale_sums(sums, x_scale, w_scale, bias, dtype) -> torch.Tensor:
    """Integer code sums (tokens, out) -> sums * x_scale * w_scale + bias in fp32, in this order, then `dtype`.

    Every path with integer activations ends here, so given the same sums they agree bit for bit.
    """
    # In place on the sums (callers pass a fresh tensor): the output is the largest tensor here. Measured
    # on a 16384 x 128 -> 512 layer, forward and backward, 2 threads: out of place this form took 1.3x
    # the time of F.linear on fake-quantized tensors, in place about the same.
    out = sums.float().mul_(x_scale[:, None]).mul_(w_scale.reshape(1, -1).float())
    if bias is not None:
        out.add_(bias.float())
    return out.to(dtype)


def code_sums(x_codes: torch.Tensor, w_codes: torch.Tensor, w_max: int) -> torch.Tensor:
    """x_codes @ w_codes^T as exact integers in floating point.

    fp32 holds every integer below 2^24 exactly, so the sums are exact in any summation order while
    K * 127 * w_max < 2^24 (K < 132,000 for ternary weights); above that, fp64 (exact below 2^53).
    """
    exact = torch.float32 if x_codes.shape[-1] * 127 * w_max < 2**24 else torch.float64
    with torch.autocast(x_codes.device.type, enabled=False):
        return F.linear(x_codes.to(exact), w_codes.to(exact))  # [M, K] @ [N, K]^T -> [M, N]


class LinearSaved(NamedTuple):
    """The tensors the backward of y = Q(x) Q(W)^T + b keeps from its forward (ctx.save_for_backward)."""

    inputs: torch.Tensor  # (tokens, in): activation codes (int8, or fp32 integer levels), or x itself
    input_scale: torch.Tensor | None  # (tokens,) scales of the codes; None when `inputs` is x itself
    weight_codes: torch.Tensor  # (out, in) int8
    weight_scale: torch.Tensor  # 0-d, or (out, 1) for per-row scales


class LinearMeta(NamedTuple):
    """What the backward needs to know of the forward's tensors besides LinearSaved."""

    x_dtype: torch.dtype
    x_shape: torch.Size
    weight_dtype: torch.dtype


def linear_backward(grad: torch.Tensor, saved: LinearSaved, meta: LinearMeta, needs: Sequence[bool]):
    """Straight-through gradients (x, W, b) of y = Q(x) Q(W)^T + b from the saved codes and scales, for
    the inputs `needs` marks: grad_x = grad @ Q(W) and grad_W = grad^T @ Q(x), with Q(x) rebuilt from its
    codes exactly as quantize_activation gives it."""
    grad = grad.reshape(-1, grad.shape[-1])
    grad_x = grad_w = grad_b = None
    if needs[0]:
        w_q = dequantize(saved.weight_codes, saved.weight_scale, grad.dtype)
        grad_x = (grad @ w_q).to(meta.x_dtype).reshape(meta.x_shape)  # [M, N] @ [N, K] -> [M, K]
    if needs[1]:
        x_q = saved.inputs
        if saved.input_scale is not None:
            x_q = dequantize(saved.inputs, saved.input_scale[:, None], meta.x_dtype)
        grad_w = (grad.t() @ x_q.to(grad.dtype)).to(meta.weight_dtype)  # [N, M] @ [M, K] -> [N, K]
    if needs[2]:
        grad_b = grad.sum(0)
    return grad_x, grad_w, grad_b


class _IntegerLinear(torch.autograd.Function):
    """Q(x) Q(W)^T + b computed as integer code sums scaled afterwards; straight-through gradients."""

    @staticmethod
    def forward(ctx, x, weight, bias, bits, act_bits):
        # fp32 integer levels rather than int8 codes: the float matmul takes them without a conversion
        x_codes, x_scale = activation_levels(x.reshape(-1, x.shape[-1]), act_bits)
        codes, scale = weight_codes(weight, bits)
        sums = code_sums(x_codes, codes, max_code(bits))
        ctx.save_for_backward(*LinearSaved(x_codes, x_scale, codes, scale))
        ctx.meta = LinearMeta(x.dtype, x.shape, weight.dtype)
        out = scale_sums(sums, x_scale, scale, bias, output_dtype(x))
        return out.reshape(*x.shape[:-1], weight.shape[0])

    @staticmethod
    def backward(ctx, grad):
        saved = LinearSaved(*ctx.saved_tensors)
        return *linear_backward(grad, saved, ctx.meta, ctx.needs_input_grad[:3]), None, None


def integer_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, bits: float, act_bits: int):
    """The quantized linear layer at full quantization with activations of <= 8 bits.

    Equal in value to F.linear(quantize_activation(x), quantize_weight(W), b), but computed the way an
    integer kernel computes it (exact sums of code products, then the scales), so the QAT layer, the
    packed layer's int8 path and the reference all give the same bits on a CPU.
    """
    return _IntegerLinear.apply(x, weight, bias, bits, act_bits)


def relative_error(w: torch.Tensor, bits: float) -> torch.Tensor:
    """||W - Q(W)|| / ||W|| in fp32 (0 for an all-zero W)."""
    wf = w.detach().float()
    return torch.linalg.vector_norm(wf - quantize_weight(wf, bits)) / torch.linalg.vector_norm(wf).clamp_min(EPS)


class _StraightThrough(torch.autograd.Function):
    """Forward returns the quantized tensor exactly; backward passes the gradient to the latent one."""

    @staticmethod
    def forward(ctx, latent: torch.Tensor, quantized: torch.Tensor) -> torch.Tensor:  # noqa: ARG004
        return quantized

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: ARG004
        return grad, None


def ste(latent: torch.Tensor, quantized: torch.Tensor) -> torch.Tensor:
    """Straight-through estimator.

    Unlike `latent + (quantized - latent).detach()`, the forward value is `quantized` bit for bit, which
    is what lets the packed inference layer reproduce the QAT model's outputs exactly.
    """
    return _StraightThrough.apply(latent, quantized)


def blend(latent: torch.Tensor, quantized: torch.Tensor, lam: float) -> torch.Tensor:
    """Gradual quantization W + lam * (Q(W) - W), with the straight-through gradient (identity).

    lam = 1 returns Q(W) exactly (not W + (Q(W) - W), which rounds differently in floating point).
    """
    if lam >= 1.0:
        return ste(latent, quantized)
    mixed = latent.detach() + lam * (quantized - latent.detach())
    return ste(latent, mixed.to(latent.dtype))
