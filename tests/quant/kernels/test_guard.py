"""Safe dispatch (quant/kernels/guard.py): under "auto", a kernel (Triton, or the packed layer's C kernel on a
CPU) that fails to compile, raises or gives other numbers falls back to the torch path for its key with one
warning; under "triton" a Triton kernel's error raises.
The kernels are replaced by fakes here; the oracle is the same layer with LIGHTNING_HYBRID_KERNELS=torch.
The real kernels pass their own trials through TRITON_INTERPRET=1."""

import shutil
import sys
import types
import warnings

import pytest
import torch

from lightning_hybrid.quant import BitLinear, formats, kernels
from lightning_hybrid.quant import reference as ref
from lightning_hybrid.quant.inference import PackedBitLinear
from lightning_hybrid.quant.kernels import guard, native

COMPILE_ERROR = "ptxas fatal: Value 'sm_120' is not defined for option 'gpu-name'"


@pytest.fixture(autouse=True)
def _fresh_verdicts():
    guard.reset()
    yield
    guard.reset()


def _unpacked_reference(x, packed, scale, bias, in_features, act_bits):
    codes = formats.unpack(packed, "2bit", (packed.shape[0], in_features))
    return guard.reference_packed(x, codes, scale, bias, 1.58, act_bits, torch.float32)


def _fake_kernels(monkeypatch, mode="auto", bit_linear=guard.reference_linear, packed_linear=_unpacked_reference):
    """Kernels that compute what `bit_linear` / `packed_linear` say, counted, on every tensor's path."""
    calls = {"bit_linear": 0, "packed_linear": 0}

    def counted(name, fn):
        def run(*args):
            calls[name] += 1
            return fn(*args)

        return run

    module = types.ModuleType("lightning_hybrid.quant.kernels.bitlinear")
    module.bit_linear, module.packed_linear = counted("bit_linear", bit_linear), counted("packed_linear", packed_linear)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(kernels, "use_triton", lambda t: True)
    monkeypatch.setenv("LIGHTNING_HYBRID_KERNELS", mode)
    return calls


def _raise(*args):
    raise RuntimeError(COMPILE_ERROR)


def _layer_and_input(seed=0):
    torch.manual_seed(seed)
    return BitLinear(40, 24).eval(), torch.randn(5, 40)


def _oracle(monkeypatch, layer, x):
    with monkeypatch.context() as m:
        m.setenv("LIGHTNING_HYBRID_KERNELS", "torch")
        m.setattr(kernels, "use_triton", lambda t: False)
        return layer(x)


def _run_twice(layer, x):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outputs = [layer(x) for _ in range(2)]
    return outputs, [str(w.message) for w in caught if "lightning_hybrid" in str(w.message)]


def test_a_kernel_that_fails_to_compile_falls_back_for_its_key_with_one_warning(monkeypatch):
    layer, x = _layer_and_input()
    want = _oracle(monkeypatch, layer, x)
    calls = _fake_kernels(monkeypatch, bit_linear=_raise)
    (first, second), messages = _run_twice(layer, x)
    torch.testing.assert_close(first, want, rtol=0, atol=0)
    torch.testing.assert_close(second, want, rtol=0, atol=0)
    assert calls["bit_linear"] == 1  # the one trial; never again for this key
    assert len(messages) == 1
    assert "bit_linear" in messages[0] and COMPILE_ERROR in messages[0] and "float32" in messages[0]
    assert "LIGHTNING_HYBRID_KERNELS=torch" in messages[0] and "LIGHTNING_HYBRID_KERNELS=triton" in messages[0]


@pytest.mark.parametrize(
    ("wrong", "said"),
    [
        (lambda *a: guard.reference_linear(*a) * 1.01, "differs from the torch reference by 0.01"),
        (
            lambda *a: torch.full_like(guard.reference_linear(*a), float("nan")),
            "differs from the torch reference by nan",
        ),
        (lambda *a: guard.reference_linear(*a)[:-1], "differs from the torch reference by inf"),
    ],
    ids=["off-by-1%", "nan", "wrong-shape"],
)
def test_a_kernel_that_computes_other_numbers_falls_back(monkeypatch, wrong, said):
    layer, x = _layer_and_input()
    want = _oracle(monkeypatch, layer, x)
    _fake_kernels(monkeypatch, bit_linear=wrong)
    (out, _), messages = _run_twice(layer, x)
    torch.testing.assert_close(out, want, rtol=0, atol=0)
    assert len(messages) == 1 and said in messages[0], messages


def test_a_kernel_that_passes_serves_every_later_call_and_each_key_is_checked_once(monkeypatch):
    layer, x = _layer_and_input()
    calls = _fake_kernels(monkeypatch)
    _, messages = _run_twice(layer, x)
    assert calls["bit_linear"] == 3 and not messages  # the trial, then both calls
    BitLinear(40, 24, bits=1.0)(x)  # another key (binary weights): its own trial, then its call
    assert calls["bit_linear"] == 5


def test_strict_triton_raises_the_kernels_error(monkeypatch):
    layer, x = _layer_and_input()
    _fake_kernels(monkeypatch, mode="triton", bit_linear=_raise)
    with pytest.raises(RuntimeError, match="ptxas fatal"):
        layer(x)


def _packed_layer(seed=0):
    torch.manual_seed(seed)
    codes, scale = ref.ternary_codes(torch.randn(24, 40))
    layer = PackedBitLinear(40, 24, bits=1.58, layout="2bit", act_bits=8, bias=torch.randn(24))
    layer.weight_packed.copy_(formats.pack(codes, "2bit"))
    layer.weight_scale.copy_(scale.reshape(-1))
    return layer, torch.randn(3, 40)


def test_the_packed_layer_falls_back_too(monkeypatch):
    layer, x = _packed_layer()
    want = _oracle(monkeypatch, layer, x)
    calls = _fake_kernels(monkeypatch, packed_linear=_raise)
    (out, _), messages = _run_twice(layer, x)
    torch.testing.assert_close(out, want, rtol=0, atol=0)
    assert calls["packed_linear"] == 1 and len(messages) == 1 and "packed_linear" in messages[0]


def test_a_packed_kernel_that_passes_runs_both_trial_sizes_then_serves(monkeypatch):
    layer, x = _packed_layer()
    calls = _fake_kernels(monkeypatch)
    _, messages = _run_twice(layer, x)
    assert calls["packed_linear"] == len(guard.TRIAL_TOKENS) + 2 and not messages


def test_the_real_kernels_pass_their_trials():
    pytest.importorskip("triton")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    x, weight = torch.zeros(1, 8, device=device), torch.zeros(4, 8, device=device)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a failed trial warns: make it fail the test
        for bits, act_bits in [(1.58, 8), (1.0, 8), (1.58, None), (4.0, 8)]:
            assert guard.bit_linear_trusted(x, weight, bits, act_bits)
        for bits in (1.58, 1.0, 2.0):
            assert guard.packed_linear_trusted(x, bits, 8, torch.float32)


def test_an_error_on_a_later_call_falls_back_from_then_on(monkeypatch):
    """A kernel that passes its small trial but fails for a real shape (a config the trial did not compile)."""
    layer, x = _layer_and_input()
    want = _oracle(monkeypatch, layer, x)

    def small_only(a, *rest):
        if a.shape[0] != guard.TRIAL_TOKENS[1]:
            raise RuntimeError(COMPILE_ERROR)
        return guard.reference_linear(a, *rest)

    calls = _fake_kernels(monkeypatch, bit_linear=small_only)
    (first, second), messages = _run_twice(layer, x)
    torch.testing.assert_close(first, want, rtol=0, atol=0)
    torch.testing.assert_close(second, want, rtol=0, atol=0)
    assert calls["bit_linear"] == 2  # the trial and the failed call; not the second call
    assert len(messages) == 1 and "failed on a call" in messages[0] and COMPILE_ERROR in messages[0]


def test_strict_triton_raises_on_a_later_call_too(monkeypatch):
    _fake_kernels(monkeypatch, mode="triton", packed_linear=_raise)
    packed, px = _packed_layer()
    with pytest.raises(RuntimeError, match="ptxas fatal"):
        packed(px)


def _no_compiler():
    raise RuntimeError("no C compiler found (set CC, or install gcc)")


def test_a_c_kernel_that_cannot_be_built_leaves_the_packed_layer_on_torch_with_one_warning(monkeypatch):
    layer, x = _packed_layer()
    want = _oracle(monkeypatch, layer, x)
    monkeypatch.delenv("LIGHTNING_HYBRID_KERNELS", raising=False)
    monkeypatch.setattr(native, "library", _no_compiler)
    (out, again), messages = _run_twice(layer, x)
    torch.testing.assert_close(out, want, rtol=0, atol=0)
    torch.testing.assert_close(again, want, rtol=0, atol=0)
    assert len(messages) == 1 and guard.NATIVE in messages[0] and "no C compiler found" in messages[0]
    assert "LIGHTNING_HYBRID_KERNELS=torch silences this" in messages[0] and "triton" not in messages[0]


def test_a_c_kernel_with_other_numbers_fails_its_check(monkeypatch):
    layer, x = _packed_layer()
    want = _oracle(monkeypatch, layer, x)
    monkeypatch.delenv("LIGHTNING_HYBRID_KERNELS", raising=False)
    run = native.Int8Linear.__call__
    monkeypatch.setattr(native.Int8Linear, "__call__", lambda self, a: run(self, a) * 1.01)
    (out, _), messages = _run_twice(layer, x)
    torch.testing.assert_close(out, want, rtol=0, atol=0)
    assert len(messages) == 1 and "differs from the torch reference" in messages[0]


@pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")), reason="no C compiler to build the kernel")
def test_the_real_c_kernel_passes_its_trial():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for act_bits in (8, 4):
            assert guard.trusted(guard.NATIVE, (act_bits,), guard._native_trial(act_bits))
