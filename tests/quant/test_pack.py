"""The packers and unpackers of each layout, against the byte layouts quant/pack.py documents."""

import pytest
import torch

from lightning_hybrid.quant import pack as packing


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


def test_unchecked_2bit_decoding_equals_unpacking():
    codes = torch.randint(-1, 2, (9, 37), generator=torch.Generator().manual_seed(0), dtype=torch.int8)
    packed = packing.pack_2bit(codes)
    assert torch.equal(packing.decode_2bit(packed, 37), codes) and torch.equal(packing.unpack_2bit(packed, 37), codes)


def test_a_flat_code_vector_packs_four_a_byte_as_terngrad_sends_it():
    codes = torch.tensor([-1, 0, 1, 1, -1, 0, 0], dtype=torch.int8)
    packed = packing.pack_2bit(codes)
    # oracle: code + 1 in two bits, first code lowest: (0, 1, 2, 2) -> 0 + 4 + 32 + 128;
    # (0, 1, 1, padding code 0 -> 1) -> 0 + 4 + 16 + 64
    assert packed.tolist() == [164, 84] and packed.dtype == torch.uint8
    torch.testing.assert_close(packing.decode_2bit(packed, codes.numel()), codes, rtol=0, atol=0)
