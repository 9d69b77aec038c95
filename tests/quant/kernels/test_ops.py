"""The packed layer's kernels as custom ops (quant/kernels/ops.py): torch.library.opcheck's checks of their
registration, a compiled packed layer in one graph with the eager layer's bits (oracle: the eager layer,
which runs the same kernels; tolerance: equal), the reference inside an op whose kernel is refused, and
BitLinear's training op with its straight-through gradient (oracle: BitLinear on the torch reference)."""

import shutil

import pytest
import torch

from lightning_hybrid.quant import BitLinear, formats, pack
from lightning_hybrid.quant import reference as ref
from lightning_hybrid.quant.inference import PackedBitLinear
from lightning_hybrid.quant.kernels import guard, ops

needs_cc = pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")), reason="no C compiler")


@pytest.fixture(autouse=True)
def _fresh_verdicts():
    guard.reset()
    yield
    guard.reset()


def _weights(k=40, n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    codes, scale = ref.weight_codes(torch.randn(n, k, generator=g), 1.58)
    return codes, pack.pack_2bit(codes), scale.reshape(-1).float(), torch.randn(n, generator=g)


@needs_cc
def test_the_cpu_op_passes_opcheck_and_gives_the_reference_bits():
    codes, packed, scale, bias = _weights()
    x = torch.randn(2, 3, 40)
    for weights in (packed, codes):
        args = (x, weights, scale, bias, 40, 1.58, 8)
        torch.library.opcheck(ops.packed_linear_cpu, args)
        want = guard.reference_packed(x.reshape(6, 40), codes, scale, bias, 1.58, 8, torch.float32)
        assert torch.equal(ops.packed_linear_cpu(*args), want.reshape(2, 3, 12))


def test_an_op_whose_kernel_is_refused_computes_the_reference(monkeypatch):
    codes, packed, scale, bias = _weights()
    x = torch.randn(3, 40)
    monkeypatch.setitem(guard._verdicts, (guard.NATIVE, 8), False)  # as after a failed build
    want = guard.reference_packed(x, codes, scale, bias, 1.58, 8, torch.float32)
    assert torch.equal(ops.packed_linear_cpu(x, packed, scale, bias, 40, 1.58, 8), want)
    monkeypatch.setattr(guard, "packed_linear", lambda *args: None)  # a Triton key sent to the reference
    got = ops.packed_linear_triton(x, packed, scale, bias, 40, 1.58, 8, torch.float32, torch.bfloat16)
    assert got.dtype == torch.bfloat16 and torch.equal(got, want.to(torch.bfloat16))


@needs_cc
@pytest.mark.slow  # inductor compiles the graph around the op
def test_a_compiled_packed_layer_calls_the_c_kernel_in_one_graph(monkeypatch):
    monkeypatch.delenv("LIGHTNING_HYBRID_KERNELS", raising=False)
    codes, packed, scale, bias = _weights(k=64, n=48)
    layer = PackedBitLinear(64, 48, 1.58, "2bit", 8, bias=bias)
    layer.weight_packed.copy_(formats.pack(codes, "2bit"))
    layer.weight_scale.copy_(scale)
    x = torch.randn(1, 3, 64)
    explained = torch._dynamo.explain(layer)(x)
    assert explained.graph_count == 1 and explained.graph_break_count == 0, explained.break_reasons
    assert "packed_linear_cpu" in str(explained.graphs[0].code)
    torch._dynamo.reset()
    assert torch.equal(torch.compile(layer)(x), layer(x))


@pytest.mark.slow
def test_a_compiled_packed_layer_on_triton_keeps_one_graph(monkeypatch):
    pytest.importorskip("triton")
    monkeypatch.setenv("LIGHTNING_HYBRID_KERNELS", "triton")  # on a CPU: through TRITON_INTERPRET=1
    codes, packed, scale, bias = _weights(k=64, n=48)
    layer = PackedBitLinear(64, 48, 1.58, "2bit", 8, bias=bias)
    layer.weight_packed.copy_(formats.pack(codes, "2bit"))
    layer.weight_scale.copy_(scale)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    layer, x = layer.to(device), torch.randn(2, 64, device=device)
    explained = torch._dynamo.explain(layer)(x)
    assert explained.graph_count == 1 and explained.graph_break_count == 0, explained.break_reasons
    assert "packed_linear_triton" in str(explained.graphs[0].code)
    torch._dynamo.reset()
    torch.testing.assert_close(torch.compile(layer)(x), layer(x), rtol=0, atol=0)


@pytest.mark.parametrize("act_bits", [8, None])
def test_the_training_op_passes_opcheck_and_its_reference_fallback_gives_the_reference(monkeypatch, act_bits):
    g = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(5, 40, generator=g), torch.randn(12, 40, generator=g), torch.randn(12, generator=g)
    monkeypatch.setitem(guard._verdicts, ("bit_linear", *guard.bit_linear_key(x, w, 1.58, act_bits)), False)
    args = (x, w.requires_grad_(), b, 1.58, act_bits, torch.float32)
    torch.library.opcheck(ops.bit_linear_triton, args)
    out = ops.bit_linear(x, w, b, 1.58, act_bits)
    torch.testing.assert_close(out, guard.reference_linear(x, w, b, 1.58, act_bits), rtol=0, atol=0)
    out.square().sum().backward()
    # the oracle's gradient: BitLinear on the torch reference, the same weight
    monkeypatch.setenv("LIGHTNING_HYBRID_KERNELS", "torch")
    layer = BitLinear(40, 12, act_bits=act_bits)
    with torch.no_grad():
        layer.weight.copy_(w)
        layer.bias.copy_(b)
    layer(x).square().sum().backward()
    torch.testing.assert_close(w.grad, layer.weight.grad, rtol=0, atol=1e-6 * float(layer.weight.grad.abs().max()))


@pytest.mark.slow
def test_a_compiled_bit_linear_on_triton_trains_in_one_graph(monkeypatch):
    """Oracle: the eager layer on the same kernels; 1e-6 of the largest value (inductor compiles the
    backward's matmuls, which may sum in another order)."""
    pytest.importorskip("triton")
    monkeypatch.setenv("LIGHTNING_HYBRID_KERNELS", "triton")  # on a CPU: through TRITON_INTERPRET=1
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    layer, x = BitLinear(64, 48).to(device), torch.randn(2, 3, 64, device=device)
    explained = torch._dynamo.explain(layer)(x)
    assert explained.graph_count == 1 and explained.graph_break_count == 0, explained.break_reasons
    assert "bit_linear_triton" in str(explained.graphs[0].code)
    torch._dynamo.reset()
    eager = layer(x)
    eager.square().sum().backward()
    want = layer.weight.grad.clone()
    layer.weight.grad = None
    compiled = torch.compile(layer)(x)
    compiled.square().sum().backward()
    torch.testing.assert_close(compiled, eager, rtol=0, atol=1e-6 * float(eager.abs().max()))
    torch.testing.assert_close(layer.weight.grad, want, rtol=0, atol=1e-6 * float(want.abs().max()))
