"""Bit packing of quantized weight codes: one packer and unpacker per layout (quant/formats.py is the
table of layouts that the export and the inference layer read).

Layouts (the byte order is part of the file format, version 1):
  * "2bit":  4 codes a byte along each row's input dimension; code c in {-1, 0, 1} is stored as c + 1
             in bits 2j..2j+1 of byte k // 4 for column k = 4 * (k // 4) + j. Rows are padded to a
             multiple of 4, so a kernel can unpack a row tile with shifts and masks.
  * "base3": 5 codes a byte over the flattened tensor, byte = sum_j (c_j + 1) * 3^j (at most 242), i.e.
             8/5 = 1.6 bits a weight, since 3^5 = 243 <= 256.
  * "1bit":  binary codes, 8 a byte along each row, bit j of byte k // 8 set for code +1.
  * "4bit":  codes in [-7, 7] (4-bit symmetric), 2 a byte along each row: c + 8 in the low nibble for
             even columns, the high nibble for odd ones (format version 2).
  * "int8":  codes in [-127, 127] as one byte each (two's complement; format version 2).
The 2-bit symmetric integer codes of mixed-precision plans are in {-1, 0, 1} and use the "2bit" layout.
Unpacking rejects values no packer can write (a 2-bit field of 3, a base-3 byte above 242), so most
corruption is caught even before the file checksum is compared.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

_POW3 = torch.tensor([1, 3, 9, 27, 81], dtype=torch.int32)


class CorruptPackError(ValueError):
    """Packed bytes that no packer could have written."""


def _pad_last(x: torch.Tensor, multiple: int, value: int) -> torch.Tensor:
    pad = -x.shape[-1] % multiple
    return F.pad(x, (0, pad), value=value) if pad else x


def pack_2bit(codes: torch.Tensor) -> torch.Tensor:
    """int8 codes in {-1, 0, 1}, shape (..., K) -> uint8 (..., ceil(K / 4))."""
    u = _pad_last(codes.to(torch.int32) + 1, 4, 1)
    u = u.reshape(*u.shape[:-1], -1, 4)
    return (u[..., 0] | (u[..., 1] << 2) | (u[..., 2] << 4) | (u[..., 3] << 6)).to(torch.uint8)


def unpack_2bit(packed: torch.Tensor, k: int) -> torch.Tensor:
    """Inverse of pack_2bit: uint8 (..., ceil(K / 4)) -> int8 codes (..., K)."""
    b = packed.to(torch.int32).unsqueeze(-1)
    u = (b >> torch.tensor([0, 2, 4, 6], device=packed.device)) & 3
    if bool((u == 3).any()):
        raise CorruptPackError("a 2-bit field holds 3, which the 2bit layout never writes")
    return (u.reshape(*packed.shape[:-1], -1)[..., :k] - 1).to(torch.int8)


# Byte -> its 4 codes, for decoding bytes already validated (load_packed checks every layer once).
_CODES_OF_BYTE = ((torch.arange(256).unsqueeze(-1) >> torch.tensor([0, 2, 4, 6])) & 3).to(torch.int8) - 1


def decode_2bit(packed: torch.Tensor, k: int) -> torch.Tensor:
    """unpack_2bit without the corruption check, by table lookup: about 20x faster on a CPU."""
    table = _CODES_OF_BYTE.to(packed.device)
    codes = table.index_select(0, packed.reshape(-1).to(torch.int32)).reshape(*packed.shape[:-1], -1)
    return codes[..., :k]


def pack_base3(codes: torch.Tensor) -> torch.Tensor:
    """int8 codes in {-1, 0, 1}, any shape -> flat uint8 of ceil(numel / 5) bytes."""
    u = _pad_last(codes.reshape(-1).to(torch.int32) + 1, 5, 1).reshape(-1, 5)
    return (u * _POW3.to(u.device)).sum(dim=1).to(torch.uint8)


def unpack_base3(packed: torch.Tensor, numel: int) -> torch.Tensor:
    """Inverse of pack_base3: flat uint8 -> flat int8 codes of length `numel`."""
    b = packed.reshape(-1).to(torch.int32)
    if bool((b > 242).any()):
        raise CorruptPackError("a base-3 byte exceeds 242 = 3^5 - 1")
    digits = (b.unsqueeze(-1) // _POW3.to(b.device)) % 3
    return (digits.reshape(-1)[:numel] - 1).to(torch.int8)


def pack_1bit(codes: torch.Tensor) -> torch.Tensor:
    """int8 codes in {-1, 1}, shape (..., K) -> uint8 (..., ceil(K / 8))."""
    bits = _pad_last((codes > 0).to(torch.int32), 8, 0)
    bits = bits.reshape(*bits.shape[:-1], -1, 8)
    return (bits << torch.arange(8, device=codes.device)).sum(dim=-1).to(torch.uint8)


def unpack_1bit(packed: torch.Tensor, k: int) -> torch.Tensor:
    """Inverse of pack_1bit: uint8 (..., ceil(K / 8)) -> int8 codes in {-1, 1}, shape (..., K)."""
    bits = (packed.to(torch.int32).unsqueeze(-1) >> torch.arange(8, device=packed.device)) & 1
    return (bits.reshape(*packed.shape[:-1], -1)[..., :k] * 2 - 1).to(torch.int8)


def pack_4bit(codes: torch.Tensor) -> torch.Tensor:
    """int8 codes in [-7, 7], shape (..., K) -> uint8 (..., ceil(K / 2))."""
    u = _pad_last(codes.to(torch.int32) + 8, 2, 8)
    u = u.reshape(*u.shape[:-1], -1, 2)
    return (u[..., 0] | (u[..., 1] << 4)).to(torch.uint8)


def unpack_4bit(packed: torch.Tensor, k: int) -> torch.Tensor:
    """Inverse of pack_4bit."""
    b = packed.to(torch.int32).unsqueeze(-1)
    u = (b >> torch.tensor([0, 4], device=packed.device)) & 15
    if bool((u == 0).any()):
        raise CorruptPackError("a 4-bit field holds 0 (code -8), which the 4bit layout never writes")
    return (u.reshape(*packed.shape[:-1], -1)[..., :k] - 8).to(torch.int8)


def pack_int8(codes: torch.Tensor) -> torch.Tensor:
    """int8 codes in [-127, 127] -> the same bytes as uint8."""
    return codes.to(torch.int8).contiguous().view(torch.uint8)


def unpack_int8(packed: torch.Tensor) -> torch.Tensor:
    codes = packed.contiguous().view(torch.int8)
    if bool((codes == -128).any()):
        raise CorruptPackError("an int8 code is -128, outside the symmetric range [-127, 127]")
    return codes
