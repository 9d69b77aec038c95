"""Quantizers (reference), the BitLinear layer, module conversion, packing and the inference layer."""

from lightning_hybrid.quant.convert import DEFAULT_HEAD_NAMES, ConversionReport, convert
from lightning_hybrid.quant.inference import PackedBitLinear
from lightning_hybrid.quant.linear import BitLinear, bit_linears
from lightning_hybrid.quant.metrics import QuantizationError

__all__ = [
    "DEFAULT_HEAD_NAMES",
    "BitLinear",
    "ConversionReport",
    "PackedBitLinear",
    "QuantizationError",
    "bit_linears",
    "convert",
]
