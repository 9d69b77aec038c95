"""llama.cpp's arithmetic on a TQ layer, emulated in torch, and a runner that reads logits from a GGUF file
through llama-cpp-python (the `llamacpp` extra; built from its source distribution: cmake and a C compiler).

llama.cpp multiplies a TQ2_0 / TQ1_0 weight by activations it first quantizes to Q8_K: int8 codes in
blocks of 256 consecutive values of a row, each block with its own scale, where BitLinear quantizes each
token's whole row with one absmax scale. `q8k_activation` is ggml's quantize_row_q8_K_ref (its x86 path
calls the same): iscale = -127 / (the block's value of largest magnitude), codes rounded half to even and
clipped at 127, dequantized by 1 / iscale. Inside `llama_cpp_numerics(model)` every BitLinear computes
that with its weight's scale rounded to fp16 (the TQ block scale): the oracle a llama.cpp run of
save_gguf's file is tested against.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lightning_hybrid.export.gguf_llama import TQ_TYPES, fallback_reason
from lightning_hybrid.quant import reference as ref
from lightning_hybrid.quant.linear import bit_linears

Q8K_BLOCK = 256
Q8K_MAX = 127.0


def q8k_activation(x: torch.Tensor) -> torch.Tensor:
    """`x` (fp32, last dimension a multiple of 256) as llama.cpp's Q8_K blocks dequantize it (module doc)."""
    if x.shape[-1] % Q8K_BLOCK:
        raise ValueError(f"Q8_K blocks need a last dimension divisible by {Q8K_BLOCK}, got {x.shape[-1]}.")
    blocks = x.detach().float().reshape(*x.shape[:-1], -1, Q8K_BLOCK)
    index = blocks.abs().argmax(dim=-1, keepdim=True)  # the first of equal magnitudes, as ggml's strict >
    peak = blocks.gather(-1, index)
    # true divisions, as C's: a Python number over a tensor is a reciprocal times it, one ulp off
    iscale = torch.where(peak == 0, 0.0, torch.full_like(peak, -Q8K_MAX).div(peak))
    codes = torch.round(iscale * blocks).clamp_max(Q8K_MAX)  # torch.round: half to even, as nearest_int
    scale = torch.where(peak == 0, 0.0, torch.ones_like(iscale).div(iscale))
    return (codes * scale).reshape(x.shape)


def _tq_weight(layer: nn.Module) -> torch.Tensor:
    """The weight a TQ tensor decodes to: our codes times the scale rounded to fp16."""
    codes, scale = ref.weight_codes(layer.weight, layer.bits)
    return codes.float() * scale.to(torch.float16).float()


def _as_fp16(x: torch.Tensor) -> torch.Tensor:
    return x.detach().to(torch.float16).float()


def _emulation(layer: nn.Module, ternary_type: str, fallback_type: str):
    """The forward llama.cpp computes for `layer` as save_gguf writes it."""
    fits = fallback_reason(layer) is None
    if fits and ternary_type in TQ_TYPES:  # a TQ tensor, on Q8_K activations
        weight = _tq_weight(layer)
        return lambda x: F.linear(q8k_activation(x), weight, layer.bias).to(x.dtype)
    weight = ref.quantize_weight(layer.weight, layer.bits).float()
    if (ternary_type if fits else fallback_type) == "F32":
        return lambda x: F.linear(x.float(), weight, layer.bias).to(x.dtype)
    weight = _as_fp16(weight)  # ggml converts the activations of an F16 matmul to fp16 too
    return lambda x: F.linear(_as_fp16(x), weight, layer.bias).to(x.dtype)


@contextlib.contextmanager
def llama_cpp_numerics(
    model: nn.Module, ternary_type: str = "TQ2_0", fallback_type: str = "F16"
) -> Iterator[nn.Module]:
    """Within the block, every BitLinear of `model` computes what llama.cpp computes for the tensor
    save_gguf(..., ternary_type, fallback_type=...) writes for it: a TQ tensor on Q8_K activations, or a
    float tensor (F16: activations rounded to fp16 too, as ggml does)."""
    layers = bit_linears(model)
    for layer in layers.values():
        layer.forward = _emulation(layer, ternary_type, fallback_type)
    try:
        yield model
    finally:
        for layer in layers.values():
            del layer.forward  # the class's forward again


def _llama_cpp():
    try:
        import llama_cpp
    except ImportError as err:
        raise ImportError(
            "reading a GGUF file with llama.cpp needs llama-cpp-python: pip install 'lightning_hybrid[llamacpp]' "
            "(built from source: cmake and a C compiler)"
        ) from err
    return llama_cpp


def load_llama_cpp(path: str | os.PathLike, n_ctx: int, threads: int | None = None, f32_cache: bool = True):
    """A llama_cpp.Llama over the GGUF file `path` that keeps every position's logits; its KV cache in
    fp32 when `f32_cache` (llama.cpp's default fp16 cache moves logits by about 1e-3)."""
    llama_cpp = _llama_cpp()
    cache = {"type_k": llama_cpp.GGML_TYPE_F32, "type_v": llama_cpp.GGML_TYPE_F32} if f32_cache else {}
    return llama_cpp.Llama(
        model_path=str(path), n_ctx=n_ctx, logits_all=True, verbose=False, n_threads=threads, **cache
    )


def llama_cpp_logits(path: str | os.PathLike, tokens: Sequence[int], threads: int | None = None) -> torch.Tensor:
    """llama.cpp's logits [len(tokens), vocab] for `tokens` fed in one batch to the GGUF file `path`."""
    llm = load_llama_cpp(path, n_ctx=max(len(tokens), 8), threads=threads)
    try:
        llm.eval(list(tokens))
        return torch.from_numpy(np.array(llm.scores[: len(tokens)], dtype=np.float32))
    finally:
        llm.close()
