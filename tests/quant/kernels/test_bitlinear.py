"""The Triton matmuls behind BitLinear and PackedBitLinear, against the torch path (the oracle).

The oracle is the same layer with LIGHTNING_HYBRID_KERNELS=torch: quant/reference.py quantizers, then
F.linear on the dequantized tensors. The kernels accumulate integer codes exactly and apply the scales
once at the end, so outputs differ from the oracle by floating-point rounding only: in fp32 we allow
1e-5 of the largest output (F.linear's own rounding over K <= 257 terms is below 1e-6 of it). The
straight-through gradients reuse the oracle's operands: grad_W is exact, grad_x differs through the
ternary scale (a sum in another order, 1e-6 relative). Runs on the GPU or through TRITON_INTERPRET=1.
"""

import pytest
import torch
from torch import nn

pytest.importorskip("triton")

from lightning_hybrid.quant import BitLinear, pack  # noqa: E402
from lightning_hybrid.quant import reference as ref  # noqa: E402
from lightning_hybrid.quant.inference import PackedBitLinear  # noqa: E402
from lightning_hybrid.quant.kernels import bitlinear, matmul  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# (leading input shape, in_features, out_features): none a multiple of a block size, one with zero tokens
SHAPES = [((1, 7), 13, 11), ((3, 43), 257, 129), ((5,), 1, 3), ((0, 4), 9, 6)]


def _close(actual, expected, rel=1e-5):
    scale = float(expected.abs().max()) if expected.numel() else 1.0
    torch.testing.assert_close(actual, expected, rtol=rel, atol=rel * max(scale, 1e-30))


def _inputs(lead, k, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(*lead, k, generator=g) * 3).to(DEVICE)
    if x.numel():
        x.reshape(-1, k)[0] = 0.0  # a zero token: the activation scale guard
    return x.requires_grad_()


def _bit_linear(k, n, bits, act_bits, bias=True, seed=1):
    torch.manual_seed(seed)
    return BitLinear(k, n, bias=bias, bits=bits, act_bits=act_bits).to(DEVICE)


def _run(layer, x, kernels, monkeypatch):
    monkeypatch.setenv("LIGHTNING_HYBRID_KERNELS", kernels)
    x = x.detach().clone().requires_grad_()
    layer.zero_grad()
    out = layer(x)
    out.backward(torch.randn(out.shape, generator=torch.Generator().manual_seed(3)).to(DEVICE))
    grads = [x.grad] + [p.grad.clone() for p in layer.parameters()]
    return out.detach(), grads


@pytest.mark.parametrize("lead,k,n", SHAPES)
@pytest.mark.parametrize("bits,act_bits", [(1.58, 8), (1.58, None), (1, 8), (2, 8), (4, 12)])
def test_bit_linear_forward_and_gradients_match_the_reference(lead, k, n, bits, act_bits, monkeypatch):
    layer, x = _bit_linear(k, n, bits, act_bits), _inputs(lead, k)
    out, grads = _run(layer, x, "triton", monkeypatch)
    ref_out, ref_grads = _run(layer, x, "torch", monkeypatch)
    assert out.shape == ref_out.shape == (*lead, n) and out.dtype == ref_out.dtype
    _close(out, ref_out)
    _close(grads[0], ref_grads[0])  # grad_x = grad @ Q(W)
    torch.testing.assert_close(grads[1], ref_grads[1], rtol=1e-6, atol=1e-6)  # grad_W = grad^T @ Q(x), same operands
    torch.testing.assert_close(grads[2], ref_grads[2], rtol=1e-6, atol=1e-6)  # grad_b


def test_bit_linear_without_bias_and_with_all_zero_weights(monkeypatch):
    layer, x = _bit_linear(13, 5, 1.58, 8, bias=False), _inputs((4,), 13)
    with torch.no_grad():
        layer.weight.zero_()  # the weight scale guard: codes 0, output 0, gradients still flow to x's shape
    out, grads = _run(layer, x, "triton", monkeypatch)
    assert not out.any() and grads[0].shape == x.shape and not grads[0].any()
    ref_out, ref_grads = _run(layer, x, "torch", monkeypatch)
    torch.testing.assert_close(grads[1], ref_grads[1], rtol=1e-6, atol=1e-6)


def test_a_blended_weight_stays_on_the_reference(monkeypatch):
    layer, x = _bit_linear(13, 11, 1.58, 8), _inputs((7,), 13)
    layer.quant_lambda = 0.5  # no integer codes to multiply: the kernels are not used, so equal bit for bit
    out, grads = _run(layer, x, "triton", monkeypatch)
    ref_out, ref_grads = _run(layer, x, "torch", monkeypatch)
    assert torch.equal(out, ref_out) and all(torch.equal(a, b) for a, b in zip(grads, ref_grads))


def test_the_forward_saves_int8_codes_for_the_backward(monkeypatch):
    monkeypatch.setenv("LIGHTNING_HYBRID_KERNELS", "triton")
    layer, x = _bit_linear(64, 32, 1.58, 8), _inputs((8,), 64)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        layer(x)
    big = [t for t in saved if t.numel() >= 8 * 32]  # the activation and weight sized tensors
    assert [t.dtype for t in big] == [torch.int8, torch.int8], [t.dtype for t in saved]


def _packed(bits, act_bits, k, n, bias=True, seed=4):
    layer = _bit_linear(k, n, bits, act_bits, bias=bias, seed=seed)
    codes, scale = ref.weight_codes(layer.weight, bits)
    packed = PackedBitLinear(k, n, bits, "2bit", act_bits, bias=layer.bias).to(DEVICE)
    packed.weight_packed.copy_(pack.pack_2bit(codes))
    packed.weight_scale.copy_(scale.reshape(-1))
    return packed


def _packed_run(layer, x, kernels, monkeypatch):
    monkeypatch.setenv("LIGHTNING_HYBRID_KERNELS", kernels)
    with torch.no_grad():
        return layer(x.detach())


# Tokens 1 and 3 take the GEMV kernel, 16 and 43 the tiled GEMM (GEMV_MAX_TOKENS = 15).
@pytest.mark.parametrize("tokens", [(1,), (1, 3), (16,), (1, 43)])
@pytest.mark.parametrize("k,n", [(13, 11), (257, 129), (4, 1)])
@pytest.mark.parametrize("bits,act_bits", [(1.58, 8), (1.58, None), (2, 8), (1.58, 10)])
def test_packed_layer_reads_the_2bit_layout_directly(tokens, k, n, bits, act_bits, monkeypatch):
    layer, x = _packed(bits, act_bits, k, n), _inputs(tokens, k)
    out = _packed_run(layer, x, "triton", monkeypatch)
    expected = _packed_run(layer, x, "torch", monkeypatch)
    assert out.shape == expected.shape == (*tokens, n)
    _close(out, expected)


def test_packed_layer_without_bias_and_the_gemv_gemm_boundary(monkeypatch):
    layer, calls = _packed(1.58, 8, 29, 7, bias=False), []
    for name in ("packed_gemv", "scaled_matmul"):
        kernel = getattr(matmul, name)
        monkeypatch.setattr(matmul, name, lambda *a, _k=kernel, _n=name, **kw: calls.append(_n) or _k(*a, **kw))
    for tokens in (bitlinear.GEMV_MAX_TOKENS, bitlinear.GEMV_MAX_TOKENS + 1):
        x = _inputs((tokens,), 29, seed=tokens)
        _close(_packed_run(layer, x, "triton", monkeypatch), _packed_run(layer, x, "torch", monkeypatch))
    assert calls == ["packed_gemv", "scaled_matmul"]


def test_other_layouts_use_the_reference(monkeypatch):
    layer = _packed(1.58, 8, 13, 11)
    base3 = PackedBitLinear(13, 11, 1.58, "base3", 8, bias=layer.bias).to(DEVICE)
    base3.weight_packed.copy_(pack.pack_base3(ref.ternary_codes(_bit_linear(13, 11, 1.58, 8, seed=4).weight)[0]))
    base3.weight_scale.copy_(layer.weight_scale)
    x = _inputs((3,), 13)
    assert torch.equal(_packed_run(base3, x, "triton", monkeypatch), _packed_run(base3, x, "torch", monkeypatch))


def test_a_float64_input_on_the_kernels_is_refused_by_name(monkeypatch):
    monkeypatch.setenv("LIGHTNING_HYBRID_KERNELS", "triton")
    layer = _bit_linear(5, 3, 1.58, 8).double()
    with pytest.raises(TypeError, match="`x` must be fp32, fp16 or bf16, got torch.float64"):
        layer(torch.zeros(2, 5, dtype=torch.float64, device=DEVICE))


def test_training_on_the_kernels_follows_the_reference(monkeypatch):
    # A short convergence test: the same 25 Adam steps on both paths, losses equal to 1e-4 and falling.
    def losses(kernels):
        monkeypatch.setenv("LIGHTNING_HYBRID_KERNELS", kernels)
        torch.manual_seed(0)
        model = nn.Sequential(BitLinear(16, 32), nn.ReLU(), BitLinear(32, 4)).to(DEVICE)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        g = torch.Generator().manual_seed(5)
        x, y = torch.randn(64, 16, generator=g).to(DEVICE), torch.randn(64, 4, generator=g).to(DEVICE)
        history = []
        for _ in range(25):
            loss = nn.functional.mse_loss(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            history.append(loss.item())
        return torch.tensor(history)

    on_kernels, on_reference = losses("triton"), losses("torch")
    torch.testing.assert_close(on_kernels, on_reference, rtol=1e-4, atol=0)
    assert on_kernels[-5:].mean() < 0.9 * on_kernels[:5].mean()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="bf16 kernels need a GPU (the interpreter is fp32)")
@pytest.mark.parametrize("act_bits", [8, None])
def test_bf16_on_the_gpu(act_bits, monkeypatch):
    # bf16 outputs: the kernel rounds its fp32 result once, F.linear rounds its own; 1 bf16 ulp (2^-8).
    layer, x = _bit_linear(257, 129, 1.58, act_bits).bfloat16(), _inputs((3, 43), 257).bfloat16()
    out, grads = _run(layer, x, "triton", monkeypatch)
    ref_out, ref_grads = _run(layer, x, "torch", monkeypatch)
    _close(out.float(), ref_out.float(), rel=2**-7)
    for a, b in zip(grads, ref_grads):
        _close(a.float(), b.float(), rel=2**-7)
    packed = _packed(1.58, act_bits, 257, 129).bfloat16()
    for tokens in ((1,), (64,)):
        xb = _inputs(tokens, 257).bfloat16()
        _close(
            _packed_run(packed, xb, "triton", monkeypatch).float(),
            _packed_run(packed, xb, "torch", monkeypatch).float(),
            rel=2**-7,
        )
