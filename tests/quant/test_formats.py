"""The table of widths and layouts: every layout round-trips exactly through it, and every width's entry
agrees with what its quantizer in quant/reference.py produces (the oracle)."""

import pytest
import torch

from lightning_hybrid.quant import formats
from lightning_hybrid.quant import reference as ref
from lightning_hybrid.quant.pack import CorruptPackError


def _codes(shape, low, high, seed=0):
    return torch.randint(low, high + 1, shape, generator=torch.Generator().manual_seed(seed)).to(torch.int8)


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (3, 13), (6, 42), (129, 257)])
@pytest.mark.parametrize(
    ("layout", "low", "high"), [("2bit", -1, 1), ("base3", -1, 1), ("4bit", -7, 7), ("int8", -127, 127)]
)
def test_every_layout_round_trips_exactly(shape, layout, low, high):
    codes = _codes(shape, low, high)
    packed = formats.pack(codes, layout)
    assert packed.dtype == torch.uint8 and tuple(packed.shape) == formats.packed_shape(layout, shape)
    assert torch.equal(formats.unpack(packed, layout, shape), codes)
    assert torch.equal(formats.layout(layout).decoded(packed, shape), codes)


@pytest.mark.parametrize("shape", [(1, 1), (3, 13), (5, 64), (129, 257)])
def test_binary_round_trip_is_exact(shape):
    codes = (_codes(shape, -1, 1) >= 0).to(torch.int8) * 2 - 1
    packed = formats.pack(codes, "1bit")
    assert tuple(packed.shape) == formats.packed_shape("1bit", shape)
    assert torch.equal(formats.unpack(packed, "1bit", shape), codes)


def test_bytes_per_weight():
    shape = (100, 400)
    assert formats.pack(_codes(shape, -1, 1), "2bit").numel() * 8 / 40000 == 2.0
    assert formats.pack(_codes(shape, -1, 1), "base3").numel() * 8 / 40000 == 1.6
    assert formats.pack(torch.ones(shape, dtype=torch.int8), "1bit").numel() * 8 / 40000 == 1.0
    assert formats.pack(_codes(shape, -7, 7), "4bit").numel() * 8 / 40000 == 4.0


def test_unknown_layout_and_width_are_value_errors():
    with pytest.raises(ValueError, match="`layout` must be one of .*got '3bit'"):
        formats.pack(_codes((2, 2), -1, 1), "3bit")
    with pytest.raises(ValueError, match=r"`bits` must be one of \(1, 1.58, 2, 4, 8\), got 3"):
        formats.width(3)


def test_4bit_and_int8_reject_values_no_packer_writes():
    with pytest.raises(CorruptPackError, match="4-bit field holds 0"):
        formats.unpack(torch.zeros(1, 2, dtype=torch.uint8), "4bit", (1, 4))
    with pytest.raises(CorruptPackError, match="int8 code is -128"):
        formats.unpack(torch.full((1, 2), 128, dtype=torch.uint8), "int8", (1, 2))


@pytest.mark.parametrize("bits", formats.SUPPORTED_BITS)
def test_each_width_entry_matches_its_quantizer(bits):
    width = formats.width(bits)
    w = torch.randn(24, 40, generator=torch.Generator().manual_seed(1))
    codes, scale = ref.weight_codes(w, bits)
    assert int(codes.abs().max()) == width.max_code  # the largest code the quantizer writes on Gaussian weights
    assert tuple(scale.shape) == ((24, 1) if width.per_row_scale else ())
    for name in width.layouts:  # every layout it lists stores its codes exactly
        layout = formats.layout(name)
        assert torch.equal(layout.unpack(layout.pack(codes), (24, 40)), codes)


def test_layout_for_keeps_the_preferred_ternary_layout_and_gives_other_widths_their_own():
    assert formats.layout_for(1.58, "base3") == "base3" and formats.layout_for(1.58, "2bit") == "2bit"
    assert [formats.layout_for(b, "base3") for b in (1, 2, 4, 8)] == ["1bit", "2bit", "4bit", "int8"]
