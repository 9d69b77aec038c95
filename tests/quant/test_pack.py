"""Packing is exact: unpack(pack(codes)) == codes for every layout and odd shape."""

import pytest
import torch

from lightning_hybrid.quant import pack as packing


def _ternary(shape, seed=0):
    return torch.randint(-1, 2, shape, generator=torch.Generator().manual_seed(seed), dtype=torch.int8)


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (3, 13), (6, 42), (129, 257)])
@pytest.mark.parametrize("layout", ["2bit", "base3"])
def test_ternary_round_trip_is_exact(shape, layout):
    codes = _ternary(shape)
    packed = packing.pack(codes, layout)
    assert packed.dtype == torch.uint8 and tuple(packed.shape) == packing.packed_shape(layout, shape)
    assert torch.equal(packing.unpack(packed, layout, shape), codes)


@pytest.mark.parametrize("shape", [(1, 1), (3, 13), (5, 64), (129, 257)])
def test_binary_round_trip_is_exact(shape):
    codes = (_ternary(shape) >= 0).to(torch.int8) * 2 - 1
    packed = packing.pack(codes, "1bit")
    assert tuple(packed.shape) == packing.packed_shape("1bit", shape)
    assert torch.equal(packing.unpack(packed, "1bit", shape), codes)


def test_bytes_per_weight():
    shape = (100, 400)
    assert packing.pack(_ternary(shape), "2bit").numel() * 8 / 40000 == 2.0
    assert packing.pack(_ternary(shape), "base3").numel() * 8 / 40000 == 1.6
    assert packing.pack(torch.ones(shape, dtype=torch.int8), "1bit").numel() * 8 / 40000 == 1.0


def test_2bit_byte_layout_is_the_documented_one():
    # Columns 0..3 of a row hold codes -1, 0, 1, 0 -> fields 0, 1, 2, 1 -> 0 | 1<<2 | 2<<4 | 1<<6 = 100.
    codes = torch.tensor([[-1, 0, 1, 0, 1]], dtype=torch.int8)
    packed = packing.pack_2bit(codes)
    # Second byte: code 1 -> field 2, then three padding codes 0 -> fields 1: 2 | 1<<2 | 1<<4 | 1<<6 = 86.
    assert packed.tolist() == [[100, 86]]
    assert packing.pack_base3(torch.tensor([1, 1, 1, 1, 1], dtype=torch.int8)).tolist() == [242]


def test_values_no_packer_writes_are_rejected():
    with pytest.raises(packing.CorruptPackError, match="2-bit field holds 3"):
        packing.unpack_2bit(torch.tensor([[255]], dtype=torch.uint8), 4)
    with pytest.raises(packing.CorruptPackError, match="base-3 byte exceeds 242"):
        packing.unpack_base3(torch.tensor([243], dtype=torch.uint8), 5)


def test_unknown_layout_is_a_value_error():
    with pytest.raises(ValueError, match="`layout` must be one of .*got '3bit'"):
        packing.pack(_ternary((2, 2)), "3bit")


def test_unchecked_2bit_decoding_equals_unpacking():
    codes = torch.randint(-1, 2, (9, 37), generator=torch.Generator().manual_seed(0), dtype=torch.int8)
    packed = packing.pack_2bit(codes)
    assert torch.equal(packing.decode_2bit(packed, 37), codes) and torch.equal(packing.unpack_2bit(packed, 37), codes)
