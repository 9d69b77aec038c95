"""Triton quantizers against quant/reference.py (the oracle), on the GPU or through TRITON_INTERPRET=1.

Exact where the maths is exact: the ternary codes and the dequantized weight given the kernel's scale;
the scale (a sum in another order) to 1e-6 relative; the activation quantizer bit for bit in fp32."""

import pytest
import torch

pytest.importorskip("triton")

from lightning_hybrid.quant import reference as ref  # noqa: E402
from lightning_hybrid.quant.kernels import quantize as K  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
SHAPES = [(7, 13), (129, 257), (1, 1), (3, 4097)]  # none a multiple of a block size


@pytest.mark.parametrize("shape", SHAPES)
def test_ternary_codes_match_the_reference(shape):
    w = torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(DEVICE)
    codes, scale, quantized = K.quantize_ternary(w)
    ref_codes, ref_scale = ref.ternary_codes(w)
    assert float(scale) == pytest.approx(float(ref_scale), rel=1e-6)
    assert torch.equal(codes, torch.clamp(torch.round(w / scale), -1, 1).to(torch.int8))  # the rounding, exactly
    assert torch.equal(codes, ref_codes)  # and here the same codes as with the reference's own scale
    assert torch.equal(quantized, ref.dequantize(codes, scale, w.dtype))
    assert all(torch.equal(a, b) for a, b in zip(K.ternary_codes(w), (codes, scale)))  # the codes-only variant


def test_all_zero_weight_uses_the_scale_guard():
    codes, scale, quantized = K.quantize_ternary(torch.zeros(5, 9, device=DEVICE))
    assert torch.equal(scale, ref.weight_scale(torch.zeros(5, 9))) and not codes.any() and not quantized.any()


def test_extreme_values_clip_like_the_reference():
    w = torch.tensor([[1e30, -1e30, 3e-30, 0.0, 5e6, -2.5]], device=DEVICE)
    codes, scale = K.ternary_codes(w)
    assert torch.equal(codes, torch.clamp(torch.round(w / scale), -1, 1).to(torch.int8))


def test_ties_round_half_to_even_as_torch():
    # w / s = +-0.5 and +-1.5 exactly: torch.round gives 0 and +-2 (then clipped to +-1)
    w = torch.tensor([[0.5, -0.5, 1.5, -1.5, 2.0, -2.0, 0.0, 0.0]], device=DEVICE)  # mean |w| = 1
    codes, scale = K.ternary_codes(w)
    assert float(scale) == 1.0 and codes.tolist() == [[0, 0, 1, -1, 1, -1, 0, 0]]


@pytest.mark.parametrize("shape", [(1, 7, 13), (3, 129, 257), (5, 1), (2, 0, 8)])
def test_activation_quantization_matches_the_reference(shape):
    x = (torch.randn(shape, generator=torch.Generator().manual_seed(1)) * 7).to(DEVICE)
    if x.numel():
        x.reshape(-1, shape[-1])[0] = 0.0  # a zero row: the scale guard
    torch.testing.assert_close(K.quantize_activation(x), ref.quantize_activation(x), rtol=0, atol=0)
    codes, scale = K.activation_codes(x)  # the int8 matmul's operands: the same numbers, factored
    assert codes.dtype == torch.int8 and scale.shape == (codes.shape[0],)
    torch.testing.assert_close(
        codes.float() * scale[:, None], ref.quantize_activation(x).reshape(codes.shape), rtol=0, atol=0
    )


@pytest.mark.parametrize("bits", [4, 8])
def test_activation_codes_at_other_widths(bits):
    x = torch.randn(6, 42, generator=torch.Generator().manual_seed(2)).to(DEVICE)
    codes, scale = K.activation_codes(x, bits)
    assert int(codes.abs().max()) == 2 ** (bits - 1) - 1
    torch.testing.assert_close(codes.float() * scale[:, None], ref.quantize_activation(x, bits), rtol=0, atol=0)
    with pytest.raises(ValueError, match=r"`bits` must be in \[2, 8\] for int8 activation codes, got 12"):
        K.activation_codes(x, 12)


def test_low_precision_inputs_keep_their_dtype():
    w = torch.randn(17, 33, device=DEVICE).to(torch.bfloat16)
    codes, scale, quantized = K.quantize_ternary(w)
    assert quantized.dtype == torch.bfloat16 and torch.equal(codes, ref.ternary_codes(w)[0])
    with pytest.raises(TypeError, match="`x` must be fp32, fp16 or bf16, got torch.int64"):
        K.quantize_activation(torch.ones(2, 3, dtype=torch.long))
