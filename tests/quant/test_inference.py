"""PackedBitLinear's CPU paths: the int8 matmul against the reference (oracle: equal bits), the code cache."""

import subprocess
import sys

import pytest
import torch

from lightning_hybrid.quant import formats
from lightning_hybrid.quant import reference as ref
from lightning_hybrid.quant.inference import PackedBitLinear
from lightning_hybrid.quant.kernels import guard, native, use_int8_cpu


def _layer(bits=1.58, act_bits=8, k=37, n=11, layout="2bit", cache_codes=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    codes, scale = ref.weight_codes(torch.randn(n, k, generator=g), bits)
    layer = PackedBitLinear(k, n, bits, layout, act_bits, bias=torch.randn(n, generator=g), cache_codes=cache_codes)
    layer.weight_packed.copy_(formats.pack(codes, layout))
    layer.weight_scale.copy_(scale.reshape(-1))
    return layer


@pytest.mark.parametrize("bits,layout", [(1.58, "2bit"), (1.58, "base3"), (1, "1bit"), (4, "4bit"), (8, "int8")])
@pytest.mark.parametrize("lead", [(1,), (3, 5), (0,)])
def test_int8_path_gives_the_reference_bits(bits, layout, lead, monkeypatch):
    layer = _layer(bits, layout=layout)
    x = torch.randn(*lead, 37, generator=torch.Generator().manual_seed(1))
    monkeypatch.delenv("LIGHTNING_HYBRID_KERNELS", raising=False)
    assert use_int8_cpu(x, 8)
    fast = layer(x)
    monkeypatch.setenv("LIGHTNING_HYBRID_KERNELS", "torch")
    assert not use_int8_cpu(x, 8)
    assert fast.shape == (*lead, 11) and torch.equal(fast, layer(x))


def test_activations_above_8_bits_or_unquantized_take_the_float_reference():
    x = torch.randn(4, 37)
    assert not use_int8_cpu(x, 12) and not use_int8_cpu(x, None)
    for act_bits in (12, None):
        layer = _layer(act_bits=act_bits)
        xq = x if act_bits is None else ref.quantize_activation(x, act_bits)
        expected = torch.nn.functional.linear(xq, layer.unpacked_weight(), layer.bias)
        assert torch.equal(layer(x), expected)


@pytest.fixture
def int_mm_path(monkeypatch):
    """The packed layer's path where the C kernel is not used: torch._int_mm on the cached codes."""
    monkeypatch.setattr(native, "MAX_TOKENS", 0)


def test_the_code_cache_follows_the_packed_bytes(int_mm_path):
    layer, x = _layer(), torch.randn(2, 37)
    before = layer(x)
    assert layer._codes is not None and layer._codes.dtype == torch.int8
    other = _layer(seed=5)
    layer.weight_packed.copy_(other.weight_packed)  # an in-place change: the cache must not serve stale codes
    layer.weight_scale.copy_(other.weight_scale)
    layer.bias.data.copy_(other.bias)
    assert torch.equal(layer(x), other(x)) and not torch.equal(layer(x), before)
    layer.float()  # a cast or move drops the cache
    assert layer._codes is None
    assert "_codes" not in str(layer.state_dict().keys())


def test_without_the_cache_only_the_packed_bytes_stay(int_mm_path):
    layer, x = _layer(cache_codes=False), torch.randn(2, 37)
    assert torch.equal(layer(x), _layer()(x)) and layer._codes is None


@pytest.mark.parametrize("layout", ["2bit", "base3"])
def test_a_few_tokens_take_the_c_kernel_which_follows_in_place_changes(layout, monkeypatch):
    monkeypatch.delenv("LIGHTNING_HYBRID_KERNELS", raising=False)
    layer, other, x = _layer(layout=layout), _layer(layout=layout, seed=5), torch.randn(1, 1, 37)
    before = layer(x)
    assert layer._native is not None  # the C kernel served the call
    assert (layer._codes is None) == (layout == "2bit")  # 2bit bytes are read as they are, with no codes
    layer.weight_packed.copy_(other.weight_packed)
    layer.weight_scale.copy_(other.weight_scale)
    layer.bias.data.copy_(other.bias)
    monkeypatch.setenv("LIGHTNING_HYBRID_KERNELS", "torch")
    want = other(x)
    monkeypatch.delenv("LIGHTNING_HYBRID_KERNELS")
    assert torch.equal(layer(x), want) and not torch.equal(want, before)


def _counting_kernel_calls(monkeypatch) -> list:
    calls, run = [], native.Int8Linear.__call__
    monkeypatch.setattr(native.Int8Linear, "__call__", lambda self, x: calls.append(1) or run(self, x))
    return calls


def test_the_bound_kernel_follows_replaced_tensors(monkeypatch):
    # The oracle: a fresh layer holding the new tensors, on the torch reference
    monkeypatch.delenv("LIGHTNING_HYBRID_KERNELS", raising=False)
    layer, other, x = _layer(), _layer(seed=5), torch.randn(1, 37)
    calls = _counting_kernel_calls(monkeypatch)
    before = layer(x)
    layer.weight_packed = other.weight_packed.clone()  # new objects, not in-place changes
    layer.weight_scale = other.weight_scale.clone()
    layer.bias = torch.nn.Parameter(other.bias.detach().clone(), requires_grad=False)
    got = layer(x)
    swapped = _layer(seed=9)
    layer.weight_packed.data = swapped.weight_packed.clone()  # the same objects over new memory
    layer.weight_scale.data = swapped.weight_scale.clone()
    layer.bias.data = swapped.bias.detach().clone()
    got_swapped = layer(x)
    layer.bias.data = other.bias.detach().clone()  # the bias alone
    got_bias = layer(x)
    monkeypatch.setenv("LIGHTNING_HYBRID_KERNELS", "torch")
    assert torch.equal(got, other(x)) and not torch.equal(got, before)
    assert torch.equal(got_swapped, swapped(x)) and len(calls) == 4
    swapped.bias.data = other.bias.detach().clone()
    assert torch.equal(got_bias, swapped(x))


def test_a_withdrawn_verdict_stops_every_bound_layer(monkeypatch):
    monkeypatch.delenv("LIGHTNING_HYBRID_KERNELS", raising=False)
    monkeypatch.setattr(guard, "_verdicts", {})  # this test's verdicts only
    layer, x = _layer(), torch.randn(1, 37)
    calls = _counting_kernel_calls(monkeypatch)
    want, served = layer(x), len(calls)  # the kernel's trial, then this call
    with pytest.warns(UserWarning, match="int8_linear"):
        guard.native_failed(8, RuntimeError("a failure in another layer"))
    assert torch.equal(layer(x), want) and len(calls) == served  # the torch path, same bits


def test_an_input_of_the_wrong_width_is_refused_and_the_kernel_keeps_serving(monkeypatch, recwarn):
    monkeypatch.delenv("LIGHTNING_HYBRID_KERNELS", raising=False)
    layer = _layer()
    calls = _counting_kernel_calls(monkeypatch)
    layer(torch.randn(1, 37))
    with pytest.raises(ValueError, match=r"\(\.\.\., 37\), got \(1, 36\)"):
        layer(torch.randn(1, 36))
    layer(torch.randn(1, 37))
    assert len(calls) == 3 and not [w for w in recwarn if "int8_linear" in str(w.message)]


def test_low_precision_inputs_take_the_c_kernel_with_the_reference_bits(monkeypatch):
    layer, x = _layer(), torch.randn(3, 37)

    def both(fn):  # (the default path, the torch reference)
        monkeypatch.delenv("LIGHTNING_HYBRID_KERNELS", raising=False)
        fast = fn()
        monkeypatch.setenv("LIGHTNING_HYBRID_KERNELS", "torch")
        return fast, fn()

    for dtype in (torch.bfloat16, torch.float16):
        fast, want = both(lambda d=dtype: layer(x.to(d)))
        assert fast.dtype == dtype and torch.equal(fast, want)

    def autocast():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return layer(x)

    fast, want = both(autocast)
    assert fast.dtype == torch.bfloat16 and torch.equal(fast, want)
    assert layer._native is not None


def test_inputs_or_scales_the_c_kernel_does_not_take_run_on_torch(monkeypatch):
    monkeypatch.delenv("LIGHTNING_HYBRID_KERNELS", raising=False)
    calls, run = [], native.Int8Linear.__call__
    monkeypatch.setattr(native.Int8Linear, "__call__", lambda self, x: calls.append(1) or run(self, x))
    layer, x = _layer(), torch.randn(2, 37)
    want = layer(x)
    assert len(calls) == 1
    assert torch.equal(layer(x.double()), layer(x.double()))  # fp64 inputs
    assert len(calls) == 1
    layer.double()  # scales in fp64: the binding is refused, the torch path serves
    assert torch.allclose(layer(x.double()).float(), want, atol=1e-5) and layer._native is None
    assert len(calls) == 1


def test_everything_works_without_triton():
    # triton hidden from the import system: the layers run the reference and int8 paths, nothing imports it
    code = """
import sys
sys.modules["triton"] = None
import torch
from lightning_hybrid.quant import BitLinear, PackedBitLinear
from lightning_hybrid.quant.kernels import triton_installed, use_triton
layer = BitLinear(8, 4)
layer(torch.randn(2, 8)).sum().backward()
PackedBitLinear(8, 4, 1.58, "2bit", 8)(torch.randn(2, 8))
assert not triton_installed() and not use_triton(torch.zeros(1))
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


@pytest.mark.slow
def test_the_packed_layer_compiles_in_one_graph_and_matches_eager():
    """Oracle: the eager layer (its integer sums are exact; the scales may round in another order: 1e-6)."""
    layer, x = _layer(k=64, n=48), torch.randn(3, 64)
    explained = torch._dynamo.explain(layer)(x)
    assert explained.graph_count == 1 and explained.graph_break_count == 0, explained.break_reasons
    torch._dynamo.reset()
    eager = layer(x)
    torch.testing.assert_close(torch.compile(layer)(x), eager, rtol=1e-6, atol=1e-6 * float(eager.abs().max()))
