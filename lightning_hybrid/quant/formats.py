"""The one table of weight widths and of the byte layouts that store their codes.

Every user of a width or a layout reads it: the quantizers' dispatch (reference.weight_codes), the packed
export and its loader, the inference layer. Adding a width is one Width row here, plus its maths in
reference.py when it is a new kind of quantizer; adding a layout is one Layout row, plus its packer in
pack.py.

  bits  quantizer (reference.py)               codes       scales     layouts (first: the default)
  1     BitNet binary sign(W - mean W)          {-1, 1}     1 a layer  1bit
  1.58  BitNet b1.58 absmean ternary            {-1, 0, 1}  1 a layer  2bit, base3
  2     absmax per output row, Q = 1            {-1, 0, 1}  1 a row    2bit
  4     absmax per output row, Q = 7            [-7, 7]     1 a row    4bit
  8     absmax per output row, Q = 127          [-127, 127] 1 a row    int8
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from lightning_hybrid.quant import pack as packers
from lightning_hybrid.utils.checks import choice

Shape = tuple[int, int]


@dataclass(frozen=True)
class Layout:
    """How a code matrix (out, in) becomes bytes (the byte order is part of the packed file format)."""

    name: str
    pack: Callable[[torch.Tensor], torch.Tensor]  # int8 codes (out, in) -> uint8
    unpack: Callable[[torch.Tensor, Shape], torch.Tensor]  # uint8 -> int8 codes (out, in); rejects corrupt bytes
    packed_shape: Callable[[Shape], tuple[int, ...]]  # the uint8 shape `pack` gives: the byte count
    decode: Callable[[torch.Tensor, Shape], torch.Tensor] | None = None  # unpack of checked bytes, faster

    def decoded(self, packed: torch.Tensor, shape: Shape) -> torch.Tensor:
        """The codes of bytes already checked by `unpack` (load_packed checks every layer once)."""
        return (self.decode or self.unpack)(packed, shape)


@dataclass(frozen=True)
class Width:
    """A weight width: its quantizer kind, its largest |code|, its scales and the layouts that store it."""

    bits: float
    quantizer: str  # "binary", "ternary" or "absmax" (reference.weight_codes)
    max_code: int
    per_row_scale: bool  # one fp32 scale per output row (else one per layer)
    layouts: tuple[str, ...]
    format_version: int  # the packed file format version that introduced it


def _rows(k_per_byte: int) -> Callable[[Shape], tuple[int, ...]]:
    return lambda shape: (shape[0], -(-shape[1] // k_per_byte))


LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        Layout(
            "2bit",
            packers.pack_2bit,
            lambda b, shape: packers.unpack_2bit(b, shape[1]).reshape(shape),
            _rows(4),
            decode=lambda b, shape: packers.decode_2bit(b, shape[1]).reshape(shape),
        ),
        Layout(
            "base3",
            packers.pack_base3,
            lambda b, shape: packers.unpack_base3(b, shape[0] * shape[1]).reshape(shape),
            lambda shape: (-(-(shape[0] * shape[1]) // 5),),
        ),
        Layout("1bit", packers.pack_1bit, lambda b, shape: packers.unpack_1bit(b, shape[1]).reshape(shape), _rows(8)),
        Layout("4bit", packers.pack_4bit, lambda b, shape: packers.unpack_4bit(b, shape[1]).reshape(shape), _rows(2)),
        Layout("int8", packers.pack_int8, lambda b, shape: packers.unpack_int8(b).reshape(shape), _rows(1)),
    )
}

WIDTHS: dict[float, Width] = {
    width.bits: width
    for width in (
        Width(1, "binary", 1, False, ("1bit",), 1),
        Width(1.58, "ternary", 1, False, ("2bit", "base3"), 1),
        Width(2, "absmax", 1, True, ("2bit",), 2),
        Width(4, "absmax", 7, True, ("4bit",), 2),
        Width(8, "absmax", 127, True, ("int8",), 2),
    )
}

SUPPORTED_BITS = tuple(WIDTHS)
INTEGER_BITS = tuple(b for b, w in WIDTHS.items() if w.per_row_scale)  # symmetric absmax per output row
TERNARY_LAYOUTS = WIDTHS[1.58].layouts


def check_bits(bits: float, name: str = "bits") -> float:
    """Return `bits` as one of SUPPORTED_BITS, or raise a ValueError that names the argument."""
    if isinstance(bits, bool) or not isinstance(bits, (int, float)) or bits not in WIDTHS:
        raise ValueError(
            f"`{name}` must be one of {SUPPORTED_BITS}, got {bits!r}. Use 1.58 for BitNet b1.58 ternary weights, 1 "
            "for BitNet binary weights, or 2, 4 or 8 for symmetric integer weights (mixed-precision plans)."
        )
    return WIDTHS[bits].bits


def width(bits: float) -> Width:
    return WIDTHS[check_bits(bits)]


def layout(name: str) -> Layout:
    return LAYOUTS[choice("layout", name, tuple(LAYOUTS))]


def layout_for(bits: float, preferred: str) -> str:
    """The layout a layer of `bits` is stored in: `preferred` when that width has it, else its own."""
    layouts = width(bits).layouts
    return preferred if preferred in layouts else layouts[0]


def pack(codes: torch.Tensor, layout_name: str) -> torch.Tensor:
    """Pack a 2-D code matrix (out, in) in the layout `layout_name`."""
    return layout(layout_name).pack(codes)


def unpack(packed: torch.Tensor, layout_name: str, shape: Shape) -> torch.Tensor:
    """Unpack to int8 codes of `shape` (out, in); pack.CorruptPackError for bytes no packer writes."""
    return layout(layout_name).unpack(packed, tuple(shape))


def packed_shape(layout_name: str, shape: Shape) -> tuple[int, ...]:
    """The uint8 shape `pack` produces for a code matrix of `shape`."""
    return layout(layout_name).packed_shape(tuple(shape))
