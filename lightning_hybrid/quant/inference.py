"""PackedBitLinear: the inference layer that `load_packed` puts where a BitLinear was."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lightning_hybrid.quant import pack as packing
from lightning_hybrid.quant import reference as ref


class PackedBitLinear(nn.Module):
    """A linear layer that stores its weight packed: codes in a quant/pack.py layout plus fp32 scales (one
    for 1 and 1.58 bits, one per output row for 2, 4 and 8 bits).

    The forward pass unpacks the codes, multiplies by the scale in fp32 and runs the same per-token
    activation quantization as BitLinear, so its outputs equal the QAT layer's at lam = 1 bit for bit.
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
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.bits, self.layout, self.act_bits, self.weight_dtype = bits, layout, act_bits, weight_dtype
        shape = packing.packed_shape(layout, (out_features, in_features))
        self.register_buffer("weight_packed", torch.zeros(shape, dtype=torch.uint8))
        scales = out_features if bits in ref.INTEGER_BITS else 1
        self.register_buffer("weight_scale", torch.ones(scales, dtype=torch.float32))
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(), requires_grad=False)

    def unpacked_weight(self) -> torch.Tensor:
        codes = packing.unpack(self.weight_packed, self.layout, (self.out_features, self.in_features))
        scale = self.weight_scale.reshape(-1, 1) if self.bits in ref.INTEGER_BITS else self.weight_scale[0]
        return ref.dequantize(codes, scale, self.weight_dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.act_bits is not None:
            x = ref.quantize_activation(x, self.act_bits)
        return F.linear(x, self.unpacked_weight(), self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
            f"bits={self.bits}, layout={self.layout}, act_bits={self.act_bits}"
        )
