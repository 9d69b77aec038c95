"""PackedBitLinear: the inference layer that `load_packed` puts where a BitLinear was."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lightning_hybrid.quant import formats, kernels
from lightning_hybrid.quant import reference as ref
from lightning_hybrid.quant.kernels import guard


class PackedBitLinear(nn.Module):
    """A linear layer that stores its weight packed: codes in a quant/pack.py layout plus fp32 scales (one
    for 1 and 1.58 bits, one per output row for 2, 4 and 8 bits).

    The forward pass is the QAT layer's at lam = 1 (quant/reference.py), on one of three paths chosen as
    quant/kernels/__init__.py says:
      * reference: with activations of <= 8 bits, exact integer sums of code products scaled afterwards
        (reference.integer_linear); otherwise dequantize, then F.linear. Equal to the QAT layer bit for bit.
      * CPU, activations of <= 8 bits: the same integer sums from an int8 matmul (torch._int_mm), so the
        same bits as the reference, several times faster than it at large sizes.
      * CUDA, "2bit" layout: Triton kernels read the packed bytes and unpack them in registers; equal to
        the reference to floating-point rounding.
    The first two unpack the codes once and keep them (1 byte a weight, not saved in the state dict;
    `cache_codes=False` unpacks them on every call instead, keeping only the packed bytes in memory).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bits: float,
        layout: str,
        act_bits: int | None,
        bias: torch.Tensor | None = None,
        weight_dtype: torch.dtype = torch.float32,
        cache_codes: bool = True,
    ) -> None:
        super().__init__()
        self.cache_codes = cache_codes
        self._codes, self._codes_key = None, None
        self.in_features, self.out_features = in_features, out_features
        self.bits, self.layout, self.act_bits, self.weight_dtype = bits, layout, act_bits, weight_dtype
        self.width, self.storage = formats.width(bits), formats.layout(layout)
        shape = self.storage.packed_shape((out_features, in_features))
        self.register_buffer("weight_packed", torch.zeros(shape, dtype=torch.uint8))
        scales = out_features if self.width.per_row_scale else 1
        self.register_buffer("weight_scale", torch.ones(scales, dtype=torch.float32))
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(), requires_grad=False)

    def codes(self) -> torch.Tensor:
        """The int8 weight codes (out, in), from the cache while the packed bytes are unchanged."""
        key = (self.weight_packed.data_ptr(), self.weight_packed._version, self.weight_packed.device)
        if self._codes_key == key:
            return self._codes
        codes = self.storage.decoded(self.weight_packed, (self.out_features, self.in_features)).contiguous()
        if self.cache_codes:
            self._codes, self._codes_key = codes, key
        return codes

    def _apply(self, fn, recurse=True):
        self._codes, self._codes_key = None, None  # a move or cast leaves the cache behind
        return super()._apply(fn, recurse)

    def unpacked_weight(self) -> torch.Tensor:
        codes = self.codes()
        scale = self.weight_scale.reshape(-1, 1) if self.width.per_row_scale else self.weight_scale[0]
        return ref.dequantize(codes, scale, self.weight_dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layout == "2bit" and kernels.use_triton(x):
            out = guard.packed_linear(
                x,
                self.weight_packed,
                self.weight_scale,
                self.bias,
                self.in_features,
                self.bits,
                self.act_bits,
                self.weight_dtype,
            )
            if out is not None:  # None: safe dispatch sent this key to the reference below (kernels/guard.py)
                return out
        if self.act_bits is None or self.act_bits > 8:
            xq = x if self.act_bits is None else ref.quantize_activation(x, self.act_bits)
            return F.linear(xq, self.unpacked_weight(), self.bias)  # [M, K] @ [N, K]^T -> [M, N]
        x_codes, x_scale = ref.activation_codes(x.reshape(-1, self.in_features), self.act_bits)
        if kernels.use_int8_cpu(x, self.act_bits):
            from lightning_hybrid.quant.kernels.cpu import int_sums

            sums = int_sums(x_codes, self.codes())
        else:
            sums = ref.code_sums(x_codes, self.codes(), self.width.max_code)
        out = ref.scale_sums(sums, x_scale, self.weight_scale, self.bias, ref.output_dtype(x))
        return out.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
            f"bits={self.bits}, layout={self.layout}, act_bits={self.act_bits}"
        )
