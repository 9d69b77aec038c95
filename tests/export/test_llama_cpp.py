"""llama.cpp's arithmetic: q8k_activation against ggml's quantizer written out value by value; and, where
llama-cpp-python is installed, llama.cpp itself running save_gguf's files: against llama_cpp_numerics
(our model with llama.cpp's Q8_K activations) and against our model, and its byte tokenizer."""

import importlib.util
import warnings

import numpy as np
import pytest
import torch

from helpers.tiny_llama import tiny_llama as _llama
from lightning_hybrid.export import save_gguf
from lightning_hybrid.export.llama_cpp import llama_cpp_numerics, q8k_activation
from lightning_hybrid.quant import convert

transformers = pytest.importorskip("transformers")
pytest.importorskip("gguf", reason="the gguf extra: pip install 'lightning_hybrid[gguf]'")


def _save(model, path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fallback layers' warning: tested in test_gguf_llama.py
        save_gguf(model, path, **kwargs)


def _q8k_scalar(x: np.ndarray) -> np.ndarray:
    """ggml's quantize_row_q8_K_ref then dequantize_row_q8_K, value by value in float32."""
    out = np.zeros_like(x)
    for start in range(0, len(x), 256):
        block = x[start : start + 256]
        peak = block[int(np.argmax(np.abs(block)))]
        if peak == 0:
            continue
        iscale = np.float32(-127.0) / peak
        codes = [min(127, int(np.rint(np.float32(iscale * v)))) for v in block]
        out[start : start + 256] = np.float32(codes) * np.float32(np.float32(1.0) / iscale)
    return out


def test_q8k_activation_is_ggmls_block_quantizer():
    torch.manual_seed(0)
    x = torch.randn(3, 768)
    x[1, 256:512] = 0.0  # a zero block
    x[2, 10] = -50.0  # a negative peak
    got = q8k_activation(x)
    for row in range(3):
        np.testing.assert_array_equal(got[row].numpy(), _q8k_scalar(x[row].numpy()))
    with pytest.raises(ValueError, match="divisible by 256, got 100"):
        q8k_activation(torch.randn(2, 100))


def test_llama_cpp_numerics_restores_the_model_afterwards():
    model = _llama()
    convert(model)
    ids = torch.randint(0, 256, (1, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = model(input_ids=ids).logits
        with llama_cpp_numerics(model):
            emulated = model(input_ids=ids).logits
        after = model(input_ids=ids).logits
    assert torch.equal(before, after) and not torch.equal(before, emulated)
    assert float((emulated - before).norm() / before.norm()) < 0.05  # per-token vs per-block int8: close


# llama.cpp itself: llama-cpp-python is an optional extra (built from source), not installed in CI
requires_llama_cpp = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None,
    reason="llama.cpp not installed: pip install 'lightning_hybrid[llamacpp]' (builds from source, about 5 min)",
)


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _ours(model, tokens, *numerics):
    ids = torch.tensor([tokens])
    with torch.no_grad():
        if not numerics:
            return model(input_ids=ids).logits[0]
        with llama_cpp_numerics(model, *numerics):
            return model(input_ids=ids).logits[0]


@requires_llama_cpp
@pytest.mark.parametrize("intermediate", [512, 320])
def test_a_float_file_runs_in_llama_cpp_with_our_logits(tmp_path, intermediate):
    """No activation quantization on either side: the layout itself (names, rotary permutation, grouped
    heads, metadata) is checked to float precision at every position."""
    from lightning_hybrid.export.llama_cpp import llama_cpp_logits

    model = _llama(intermediate=intermediate)
    convert(model)
    _save(model, tmp_path / "m.gguf", ternary_type="F32", float_type="F32", fallback_type="F32")
    tokens = torch.randint(0, 256, (40,), generator=torch.Generator().manual_seed(1)).tolist()
    got = llama_cpp_logits(tmp_path / "m.gguf", tokens)
    assert _relative(got, _ours(model, tokens, "F32", "F32")) < 1e-5  # measured 3e-7


@requires_llama_cpp
@pytest.mark.parametrize(
    ("ternary_type", "intermediate", "fallback_type"),
    [("TQ2_0", 512, "F16"), ("TQ1_0", 512, "F16"), ("TQ2_0", 320, "F16"), ("TQ2_0", 320, "F32")],
)
def test_llama_cpp_computes_what_our_model_does_on_its_activation_blocks(
    tmp_path, ternary_type, intermediate, fallback_type
):
    """A TQ file against llama_cpp_numerics. An activation within float noise of a rounding boundary of
    Q8_K (about 1 value in 50,000 here) lands on the other code in one of the two, which moves that
    token's logits by up to 6e-3 relative and, through attention, every later token's: so one-token
    evaluations are held to float precision (most of them) and whole sequences to 1e-2."""
    from lightning_hybrid.export.llama_cpp import llama_cpp_logits, load_llama_cpp

    model = _llama(intermediate=intermediate)
    convert(model)
    _save(model, tmp_path / "m.gguf", ternary_type=ternary_type, float_type="F32", fallback_type=fallback_type)
    numerics = (ternary_type, fallback_type)
    tokens = torch.randint(0, 256, (40,), generator=torch.Generator().manual_seed(1)).tolist()
    llm = load_llama_cpp(tmp_path / "m.gguf", n_ctx=8)
    try:
        errors = []
        for token in tokens:
            llm.reset()
            llm.eval([token])
            got = torch.tensor(llm.scores[0], dtype=torch.float32)
            errors.append(_relative(got, _ours(model, [token], *numerics)[0]))
    finally:
        llm.close()
    assert sum(e < 1e-5 for e in errors) >= 0.9 * len(errors) and max(errors) < 1e-2, errors
    got = llama_cpp_logits(tmp_path / "m.gguf", tokens)
    emulated, ours = _ours(model, tokens, *numerics), _ours(model, tokens)
    assert _relative(got, emulated) < 1e-2
    assert _relative(got, ours) < 3e-2  # our per-token activation codes: measured 6e-3 to 1e-2 here
    assert float((got.argmax(-1) == ours.argmax(-1)).float().mean()) >= 0.9


@requires_llama_cpp
def test_llama_cpp_tokenizes_text_into_our_byte_ids_and_back(tmp_path):
    from lightning_hybrid.export.llama_cpp import load_llama_cpp

    model = _llama()
    convert(model)
    _save(model, tmp_path / "m.gguf")
    llm = load_llama_cpp(tmp_path / "m.gguf", n_ctx=64)
    try:
        for text in ["def f(x):\n    return x  # two  spaces", "naïve — ünïcode", " leading", "\t\r\n"]:
            raw = text.encode()
            assert llm.tokenize(raw, add_bos=False) == list(raw)
            assert llm.detokenize(list(raw)) == raw
        # the one documented exception: SentencePiece's space sign itself reads as a space
        assert llm.tokenize("a\u2581b".encode(), add_bos=False) == list(b"a b")
    finally:
        llm.close()
