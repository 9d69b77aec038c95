"""The reference quantizers against their papers' definitions (oracles written out by hand here)."""

import pytest
import torch

from lightning_hybrid.quant import reference as ref


def test_ternary_values_and_scale_match_bitnet_b158():
    w = torch.tensor([[0.9, -0.2, 0.05], [-1.5, 0.4, 0.0]])
    s = w.abs().mean()  # 0.508333
    codes, scale = ref.ternary_codes(w)
    assert scale.item() == pytest.approx(s.item(), rel=0, abs=0)
    # round(w / s): 1.77->1 (clipped 2), -0.39->0, 0.098->0, -2.95->-1 (clipped), 0.79->1, 0->0
    assert codes.tolist() == [[1, 0, 0], [-1, 1, 0]]
    torch.testing.assert_close(ref.quantize_weight(w, 1.58), codes.float() * s, rtol=0, atol=0)


def test_ternary_codes_are_in_minus_one_zero_one():
    codes, _ = ref.ternary_codes(torch.randn(64, 33) * 5)
    assert set(codes.unique().tolist()) <= {-1, 0, 1}
    assert codes.dtype == torch.int8


def test_binary_is_sign_of_centred_weight_times_mean_abs():
    w = torch.tensor([0.5, 0.1, -0.3, 0.3])  # mean 0.15: centred 0.35, -0.05, -0.45, 0.15
    q = ref.quantize_weight(w, 1)
    beta = w.abs().mean()
    torch.testing.assert_close(q, torch.tensor([1.0, -1.0, -1.0, 1.0]) * beta, rtol=0, atol=0)


def test_binary_sign_of_zero_is_minus_one():
    # BitNet's Sign(z) is +1 for z > 0 and -1 otherwise: a weight equal to the mean maps to -1.
    codes, _ = ref.binary_codes(torch.tensor([1.0, 2.0, 3.0]))
    assert codes.tolist() == [-1, -1, 1]


def test_all_zero_weight_is_guarded_and_stays_zero():
    w = torch.zeros(4, 5)
    q = ref.quantize_weight(w, 1.58)
    assert torch.isfinite(q).all() and (q == 0).all()
    assert ref.weight_scale(w).item() == pytest.approx(ref.EPS)
    assert ref.relative_error(w, 1.58).item() == 0.0


def test_activation_quantization_is_8bit_per_token_absmax():
    x = torch.tensor([[1.0, -0.5, 0.25], [10.0, 3.0, -7.0]])
    q = ref.quantize_activation(x, 8)
    for row_x, row_q in zip(x, q):
        step = row_x.abs().max() / 127
        levels = row_q / step
        torch.testing.assert_close(levels, levels.round(), rtol=0, atol=1e-4)  # on the per-token grid
        assert levels.abs().max() <= 127 + 1e-4
        torch.testing.assert_close(row_q, row_x, rtol=0, atol=step.item() / 2 + 1e-6)  # round-to-nearest
    assert (ref.quantize_activation(torch.zeros(2, 3)) == 0).all()


def test_quantizers_keep_dtype_and_compute_in_fp32():
    w = torch.randn(8, 16)
    q16 = ref.quantize_weight(w.bfloat16(), 1.58)
    assert q16.dtype == torch.bfloat16
    codes, _ = ref.ternary_codes(w.bfloat16())
    codes32, _ = ref.ternary_codes(w.bfloat16().float())
    assert torch.equal(codes, codes32)


def test_ste_forward_is_exact_and_gradient_is_identity():
    w = torch.randn(5, 7, requires_grad=True)
    q = ref.quantize_weight(w, 1.58)
    out = ref.ste(w, q)
    assert torch.equal(out, q)  # bit for bit, not w + (q - w)
    g = torch.randn(5, 7)
    out.backward(g)
    torch.testing.assert_close(w.grad, g, rtol=0, atol=0)


@pytest.mark.parametrize("lam", [0.0, 0.3, 1.0])
def test_blend_interpolates_with_identity_gradient(lam):
    w = torch.randn(6, 4, requires_grad=True)
    q = ref.quantize_weight(w, 1.58)
    out = ref.blend(w, q, lam)
    torch.testing.assert_close(out, w.detach() + lam * (q - w.detach()), rtol=0, atol=1e-6)
    out.sum().backward()
    torch.testing.assert_close(w.grad, torch.ones_like(w), rtol=0, atol=0)


def test_relative_error_of_gaussian_weights():
    # Oracle: a Monte Carlo estimate of E||W - Q(W)|| / ||W|| for W ~ N(0, 1) computed from the
    # definitions directly, tolerance 0.01 (the estimate's spread at 1M samples is ~1e-3).
    w = torch.randn(1000, 1000, generator=torch.Generator().manual_seed(0))
    s = w.abs().mean()
    ternary = (w - (w / s).round().clamp(-1, 1) * s).norm() / w.norm()
    binary = (w - torch.where(w > w.mean(), 1.0, -1.0) * s).norm() / w.norm()
    assert ref.relative_error(w, 1.58).item() == pytest.approx(ternary.item(), abs=1e-4)
    assert ref.relative_error(w, 1).item() == pytest.approx(binary.item(), abs=1e-4)
    assert 0.4 < ternary < 0.55 and 0.55 < binary < 0.65


@pytest.mark.parametrize("bad", [3, 1.5, 0, 16, "1.58", None, True])
def test_unsupported_bits_is_a_value_error(bad):
    with pytest.raises(ValueError, match=r"`bits` must be one of \(1, 1.58, 2, 4, 8\), got"):
        ref.check_bits(bad)


@pytest.mark.parametrize("bits", [1.58, 1, 2, 4, 8])
def test_integer_linear_is_the_fake_quantized_linear_computed_on_codes(bits):
    # oracle: F.linear on the fake-quantized tensors (same value, other rounding: 1e-6 of the largest
    # output); gradients are the straight-through ones of that expression, which share its operands.
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 23, generator=g, requires_grad=True)
    w = torch.randn(9, 23, generator=g, requires_grad=True)
    b = torch.randn(9, generator=g, requires_grad=True)
    out = ref.integer_linear(x, w, b, bits, 8)
    expected = torch.nn.functional.linear(
        ref.ste(x, ref.quantize_activation(x)), ref.ste(w, ref.quantize_weight(w, bits)), b
    )
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6 * float(expected.detach().abs().max()))
    upstream = torch.randn(out.shape, generator=g)
    grads = torch.autograd.grad(out, (x, w, b), upstream)
    expected_grads = torch.autograd.grad(expected, (x, w, b), upstream)
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_code_sums_are_exact_integers_even_beyond_fp32_integers():
    # 8-bit codes over K = 1100: sums up to 1100 * 127 * 127 > 2^24, so fp32 could round; fp64 is used.
    g = torch.Generator().manual_seed(1)
    x = torch.randint(-127, 128, (3, 1100), generator=g, dtype=torch.int8)
    w = torch.full((2, 1100), 127, dtype=torch.int8)
    x[0] = 127  # 1100 * 127 * 127 = 17,741,900, an integer fp32 cannot hold exactly
    exact = x.long() @ w.long().t()
    assert torch.equal(ref.code_sums(x, w, 127).long(), exact)
    ternary = torch.randint(-1, 2, (4, 1100), generator=g, dtype=torch.int8)
    assert ref.code_sums(x, ternary, 1).dtype == torch.float32
    assert torch.equal(ref.code_sums(x, ternary, 1).long(), x.long() @ ternary.long().t())
