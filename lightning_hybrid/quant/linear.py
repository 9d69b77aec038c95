"""BitLinear: an nn.Linear whose forward sees ternary (or binary) weights and 8-bit activations."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lightning_hybrid.quant import kernels
from lightning_hybrid.quant import reference as ref
from lightning_hybrid.quant.kernels import guard, ops


class BitLinear(nn.Linear):
    """Quantization-aware nn.Linear (BitNet b1.58 / BitNet; maths in `quant/reference.py`).

    The latent `weight` and `bias` stay full precision and receive straight-through gradients. The
    forward pass quantizes the input per token to `act_bits` and the weight to `bits`, blended by
    `quant_lambda` (gradual warm-up: W + lam * (Q(W) - W), likewise for activations; lam = 1 is full
    quantization). At lam = 1 with activations of <= 8 bits the product is computed as integer code sums
    scaled afterwards (reference.integer_linear: the same value, the same bits as the packed layer);
    on CUDA tensors it runs on the Triton kernels of quant/kernels/ (a custom op under torch.compile,
    kernels/ops.py). Unlike the BitNet architecture, no
    normalization is inserted before the activation quantizer, so swapping a layer never changes what
    the module computes at full precision.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        bits: float = 1.58,
        act_bits: int | None = 8,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__(in_features, out_features, bias=bias, device=device, dtype=dtype)
        self.bits = ref.check_bits(bits)
        self.act_bits = ref.check_act_bits(act_bits)
        # A plain float, not a buffer: the model's state_dict keys stay those of the nn.Linear model, and
        # TernaryQAT keeps lam in its own checkpoint state.
        self.quant_lambda = 1.0

    @classmethod
    def from_linear(cls, linear: nn.Linear, bits: float = 1.58, act_bits: int | None = 8) -> BitLinear:
        """A BitLinear that shares `linear`'s Parameter objects (optimizers and tied weights keep working)."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"`linear` must be an nn.Linear, got {type(linear).__name__}.")
        layer = cls(linear.in_features, linear.out_features, bias=False, bits=bits, act_bits=act_bits, device="meta")
        layer.weight = linear.weight
        layer.bias = linear.bias
        layer.train(linear.training)
        return layer

    def quantized_weight(self) -> torch.Tensor:
        """The weight the forward pass uses (differentiable to the latent weight)."""
        return ref.blend(self.weight, ref.quantize_weight(self.weight, self.bits), self.quant_lambda)

    def quantized_input(self, x: torch.Tensor) -> torch.Tensor:
        if self.act_bits is None:
            return x
        return ref.blend(x, ref.quantize_activation(x, self.act_bits), self.quant_lambda)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Integer matmuls need integer codes, which a blended (lam < 1) weight or input does not have.
        if self.quant_lambda >= 1.0 and kernels.use_triton(x):
            if torch.compiler.is_compiling():  # a custom op: one graph node that falls back inside
                return ops.bit_linear(x, self.weight, self.bias, self.bits, self.act_bits)
            out = guard.bit_linear(x, self.weight, self.bias, self.bits, self.act_bits)
            if out is not None:  # None: safe dispatch sent this key to the reference below (kernels/guard.py)
                return out
        if self.quant_lambda >= 1.0 and self.act_bits is not None and self.act_bits <= 8:
            return ref.integer_linear(x, self.weight, self.bias, self.bits, self.act_bits)
        return F.linear(self.quantized_input(x), self.quantized_weight(), self.bias)  # [M, K] @ [N, K]^T -> [M, N]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, bits={self.bits}, act_bits={self.act_bits}"


def bit_linears(model: nn.Module) -> dict[str, BitLinear]:
    """The BitLinear layers of `model` by fully qualified name."""
    return {n: m for n, m in model.named_modules() if isinstance(m, BitLinear)}
