"""The C kernel of the packed layer (quant/kernels/native.py, csrc/int8_linear.c) against the torch reference
(oracle: guard.reference_packed, the reference's integer path; tolerance: equal bits), its build cache and
its argument checks. Built with the system's C compiler; skipped where there is none."""

import itertools
import shutil

import pytest
import torch

from lightning_hybrid.quant import pack
from lightning_hybrid.quant import reference as ref
from lightning_hybrid.quant.kernels import guard, native

pytestmark = pytest.mark.skipif(
    not (shutil.which("cc") or shutil.which("gcc")), reason="no C compiler to build the kernel"
)

# in_features around the kernel's 32-code and 128-column blocks, out_features around its 4-row passes
SHAPES = list(itertools.product([1, 31, 33, 128, 129, 260], [1, 3, 4, 9]))


def _case(k, n, bits, seed, bias=True):
    g = torch.Generator().manual_seed(seed)
    codes, scale = ref.weight_codes(torch.randn(n, k, generator=g), bits)
    b = torch.randn(n, generator=g) if bias else None
    return codes.contiguous(), scale.reshape(-1).float().contiguous(), b


@pytest.mark.parametrize("bits", [1, 1.58, 2, 4, 8])
@pytest.mark.parametrize("act_bits", [8, 4])
def test_int8_codes_give_the_reference_bits(bits, act_bits):
    for i, (k, n) in enumerate(SHAPES):
        codes, scale, bias = _case(k, n, bits, i, bias=i % 2 == 0)
        x = torch.randn(3, k, generator=torch.Generator().manual_seed(100 + i)) * 4
        want = guard.reference_packed(x, codes, scale, bias, bits, act_bits, torch.float32)
        assert torch.equal(native.Int8Linear(codes, scale, bias, act_bits)(x), want), (k, n)


@pytest.mark.parametrize("bits", [1.58, 2])
def test_2bit_bytes_read_as_they_are_give_the_reference_bits(bits):
    for i, (k, n) in enumerate(SHAPES):
        codes, scale, bias = _case(k, n, bits, i)
        x = torch.randn(2, k, generator=torch.Generator().manual_seed(200 + i))
        kernel = native.Int8Linear(pack.pack_2bit(codes), scale, bias, 8, in_features=k)
        assert torch.equal(kernel(x), guard.reference_packed(x, codes, scale, bias, bits, 8, torch.float32)), (k, n)


def test_many_tokens_across_the_kernels_token_tiles():
    codes, scale, bias = _case(70, 9, 1.58, 0)
    x = torch.randn(37, 70, generator=torch.Generator().manual_seed(1))  # 16 + 16 + 5
    want = guard.reference_packed(x, codes, scale, bias, 1.58, 8, torch.float32)
    assert torch.equal(native.Int8Linear(codes, scale, bias, 8)(x), want)
    assert torch.equal(native.Int8Linear(pack.pack_2bit(codes), scale, bias, 8, in_features=70)(x), want)


def test_the_portable_build_without_avx2_gives_the_same_bits(monkeypatch, tmp_path):
    monkeypatch.setenv("LIGHTNING_HYBRID_CACHE", str(tmp_path))
    monkeypatch.setattr(native, "FLAGS", tuple(f for f in native.FLAGS if f != "-march=native"))
    native.library.cache_clear()
    try:
        for i, (k, n) in enumerate(SHAPES):
            codes, scale, bias = _case(k, n, 1.58, i)
            x = torch.randn(5, k, generator=torch.Generator().manual_seed(300 + i))
            want = guard.reference_packed(x, codes, scale, bias, 1.58, 8, torch.float32)
            assert torch.equal(native.Int8Linear(codes, scale, bias, 8)(x), want), (k, n)
            packed = native.Int8Linear(pack.pack_2bit(codes), scale, bias, 8, in_features=k)
            assert torch.equal(packed(x), want), (k, n)
    finally:
        native.library.cache_clear()


def test_any_leading_shape_and_a_strided_input():
    codes, scale, bias = _case(40, 6, 1.58, 0)
    kernel = native.Int8Linear(codes, scale, bias, 8)
    x = torch.randn(2, 1, 80)[..., ::2]  # not contiguous: copied first
    want = guard.reference_packed(x.reshape(2, 40), codes, scale, bias, 1.58, 8, torch.float32)
    assert torch.equal(kernel(x), want.reshape(2, 1, 6))
    assert kernel(torch.zeros(0, 40)).shape == (0, 6)


def test_a_token_that_is_not_finite_gives_a_row_of_nans_and_leaves_the_others():
    codes, scale, bias = _case(33, 5, 1.58, 0)
    x = torch.randn(3, 33)
    x[1, 7] = float("inf")
    out = native.Int8Linear(codes, scale, bias, 8)(x)
    assert out[1].isnan().all() and torch.isfinite(out[[0, 2]]).all()
    want = guard.reference_packed(x[[0, 2]], codes, scale, bias, 1.58, 8, torch.float32)
    assert torch.equal(out[[0, 2]], want)


def test_bad_arguments_are_refused_with_their_names():
    codes, scale, _ = _case(8, 4, 1.58, 0)
    with pytest.raises(ValueError, match="`weights` must be contiguous 2-d int8"):
        native.Int8Linear(codes.float(), scale, None, 8)
    with pytest.raises(ValueError, match="`in_features` \\(9\\) goes with 2bit bytes"):
        native.Int8Linear(pack.pack_2bit(codes), scale, None, 8, in_features=9)
    with pytest.raises(ValueError, match="`in_features` \\(8\\)"):
        native.Int8Linear(codes, scale, None, 8, in_features=8)
    with pytest.raises(ValueError, match="`w_scale` must be contiguous fp32 with 1 or 4 values"):
        native.Int8Linear(codes, scale.double(), None, 8)
    with pytest.raises(ValueError, match="`bias` must be contiguous fp32 with 4 values"):
        native.Int8Linear(codes, scale, torch.zeros(3), 8)
    with pytest.raises(ValueError, match="`act_bits` must be in \\[2, 8\\], got 12"):
        native.Int8Linear(codes, scale, None, 12)
    kernel = native.Int8Linear(codes, scale, None, 8)
    with pytest.raises(ValueError, match="int8_linear takes fp32 CPU \\(..., 8\\), got torch.float64"):
        kernel(torch.zeros(1, 8, dtype=torch.float64))
    with pytest.raises(ValueError, match="got torch.float32 \\(1, 9\\)"):
        kernel(torch.zeros(1, 9))


def test_the_library_is_built_once_into_the_cache_and_named_by_its_inputs(monkeypatch, tmp_path):
    monkeypatch.setenv("LIGHTNING_HYBRID_CACHE", str(tmp_path))
    native.library.cache_clear()
    try:
        lib = native.library()
        built = list((tmp_path / "kernels").glob("int8_linear_*.so"))
        assert len(built) == 1 and built[0] == native.library_path(native.compiler())
        assert lib.lh_int8_linear is not None
        monkeypatch.setattr(native, "FLAGS", (*native.FLAGS, "-DOTHER"))  # other flags: another file
        assert native.library_path(native.compiler()) != built[0]
    finally:
        native.library.cache_clear()


def test_no_compiler_and_a_failed_build_raise_with_the_cause(monkeypatch, tmp_path):
    monkeypatch.setenv("LIGHTNING_HYBRID_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", "")
    monkeypatch.setattr(native.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="no C compiler found \\(set CC, or install gcc\\)"):
        native.compiler()
    monkeypatch.setenv("CC", "false")  # a "compiler" that fails
    native.library.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="false failed to build int8_linear.c"):
            native.library()
        assert not list((tmp_path / "kernels").glob("*.so"))  # nothing half-written is left to load
    finally:
        native.library.cache_clear()
