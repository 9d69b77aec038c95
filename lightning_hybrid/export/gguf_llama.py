"""save_gguf: a transformers Llama whose Linears TernaryQAT quantized, written as a GGUF file that llama.cpp
(and bitnet.cpp's TQ kernels) run, through the `gguf` package (the `gguf` extra).

What goes where (names and metadata as llama.cpp's own converter writes them for the "llama" architecture):
  ternary and binary layers  `ternary_type`: TQ2_0 (2.06 bits a weight) or TQ1_0 (1.69): 256 codes a
                             block, each block with an fp16 copy of the layer's scale, so the file decodes
                             to our quantized weight within fp16's precision of the scale (relative
                             4.9e-4); or F16 / F32: the quantized weight itself, for a llama.cpp build
                             or backend without TQ kernels, and as a float reference of the file;
                             q and k rows permuted into llama.cpp's rotary layout;
  embeddings, head, and the  `float_type`: F16 (default), Q8_0 or F32;
  Linears TernaryQAT kept
  norms                      F32.
A quantized layer llama.cpp's TQ types cannot hold exactly (a row length, in_features, that is not a
multiple of 256, or 2/4/8-bit integer weights) is written dequantized at `fallback_type` (F16 or F32)
with a warning naming it. A layer still in its quantization warm-up, a model that is not a Llama, and
Llama features llama.cpp reads differently (biases, scaled rope) are refused with a ValueError.

Tokenizer (`vocab`): "bytes" writes a byte-level vocabulary (token i is byte i, as this package's text
data encodes text: vocab_size 256), which llama.cpp tokenizes and detokenizes; "none" writes no
tokenizer: llama.cpp then evaluates token ids, but any call that tokenizes text aborts the process.

llama.cpp computes a TQ layer on activations quantized to int8 in blocks of 256 values (Q8_K), where
BitLinear quantizes per token: lightning_hybrid.export.llama_cpp emulates its arithmetic.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lightning_hybrid.quant import reference as ref
from lightning_hybrid.quant.linear import BitLinear, bit_linears
from lightning_hybrid.utils.checks import choice

TQ_TYPES = ("TQ2_0", "TQ1_0")
TERNARY_TYPES = (*TQ_TYPES, "F16", "F32")
FLOAT_TYPES = ("F16", "Q8_0", "F32")
FALLBACK_TYPES = ("F16", "F32")
VOCABS = ("bytes", "none")
TQ_BLOCK = 256  # weights per TQ block: the row length must be a multiple of it
Q8_0_BLOCK = 32
BYTE_TOKEN = 6  # gguf.TokenType.BYTE: detokenized as the byte itself, not as the text "<0xE2>"
NORMAL_TOKEN = 1
SPACE, SPM_SPACE = 0x20, "\u2581"

# transformers LlamaForCausalLM module -> GGUF tensor name (llama.cpp's llama architecture)
LAYER_TENSORS = {
    "input_layernorm": "attn_norm",
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "post_attention_layernorm": "ffn_norm",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}


@dataclass
class GGUFExport:
    """What save_gguf wrote: the file, its size, the layers at the TQ type and those at a fallback type."""

    path: Path
    file_bytes: int
    ternary_type: str
    quantized: list[str] = field(default_factory=list)  # layers at ternary_type
    fallback: dict[str, str] = field(default_factory=dict)  # layer -> why it is not at the TQ type

    def __str__(self) -> str:
        return (
            f"GGUF file {self.path} ({self.file_bytes} bytes): {len(self.quantized)} quantized layers at "
            f"{self.ternary_type}, {len(self.fallback)} at a fallback type"
        )


def _gguf():
    try:
        import gguf
    except ImportError as err:
        raise ImportError("save_gguf needs the gguf package: pip install 'lightning_hybrid[gguf]'") from err
    return gguf


def _llama(model: nn.Module) -> nn.Module:
    """The transformers LlamaForCausalLM in `model` (itself, or its one submodule of that kind)."""
    found = [m for m in model.modules() if type(m).__name__ == "LlamaForCausalLM"]
    if len(found) != 1:
        raise ValueError(
            f"save_gguf writes Llama-architecture models: a transformers LlamaForCausalLM, or a module holding "
            f"exactly one (the main job's model=llama); {type(model).__name__} holds {len(found)}."
        )
    return found[0]


def _rope_theta(config) -> float:
    # transformers 5 keeps rope settings in rope_parameters (rope_scaling is its alias), 4.x in rope_scaling
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    if rope.get("rope_type", rope.get("type", "default")) != "default":
        raise ValueError(f"save_gguf writes plain rotary embeddings; this model's rope is scaled ({rope}).")
    theta = getattr(config, "rope_theta", None) or rope.get("rope_theta")
    return float(theta)


def check_llama_config(config) -> None:
    """Refuse what the "llama" architecture of llama.cpp would read differently (module doc)."""
    for flag in ("attention_bias", "mlp_bias"):
        if getattr(config, flag, False):
            raise ValueError(f"save_gguf does not write biases; this Llama has {flag}=True.")
    if config.hidden_act != "silu":
        raise ValueError(f"llama.cpp's Llama uses SiLU; this model has hidden_act={config.hidden_act!r}.")
    _rope_theta(config)


def check_gguf_settings(
    model: nn.Module,
    ternary_type: str = "TQ2_0",
    float_type: str = "F16",
    fallback_type: str = "F16",
    vocab: str = "bytes",
) -> None:
    """What save_gguf would refuse that is known before training: the model and the argument values."""
    choice("ternary_type", ternary_type, TERNARY_TYPES)
    choice("float_type", float_type, FLOAT_TYPES)
    choice("fallback_type", fallback_type, FALLBACK_TYPES)
    choice("vocab", vocab, VOCABS)
    config = _llama(model).config
    check_llama_config(config)
    if vocab == "bytes" and config.vocab_size != 256:
        raise ValueError(
            f"vocab='bytes' writes one token per byte (256); this model has vocab_size={config.vocab_size}: "
            "use vocab='none'."
        )


def permute_rotary(rows: torch.Tensor, heads: int) -> torch.Tensor:
    """q or k rows from transformers' rotary layout (each head's two halves) to llama.cpp's (pairs
    interleaved), as llama.cpp's converter permutes them; `heads` is the key/value head count for k."""
    out = rows.shape[0]
    return rows.reshape(heads, 2, out // heads // 2, *rows.shape[1:]).transpose(1, 2).reshape(rows.shape)


def fallback_reason(layer: BitLinear) -> str | None:
    """Why `layer` cannot be a TQ tensor, or None."""
    if ref.max_code(layer.bits) != 1:  # binary, ternary and 2-bit codes are all in {-1, 0, 1}
        return f"{layer.bits}-bit integer weights have more than three levels"
    if layer.in_features % TQ_BLOCK:
        return f"its rows ({layer.in_features} weights) are not a multiple of {TQ_BLOCK}"
    return None


def _refuse(llama: nn.Module, layers: dict[str, BitLinear]) -> None:
    """A layer in warm-up, and a quantized head tied to the embeddings (llama.cpp would run the float
    embeddings in its place), are refused before anything is written."""
    for name, layer in layers.items():
        if layer.quant_lambda < 1.0:
            raise ValueError(
                f"save_gguf cannot write layer {name!r}: it is still in its quantization warm-up "
                f"(lambda {layer.quant_lambda:g} < 1): train to the end."
            )
    if llama.config.tie_word_embeddings and "lm_head" in layers:
        raise ValueError(
            "save_gguf cannot write layer 'lm_head': it is quantized but tied to the embeddings, which a GGUF "
            "file stores once, unquantized; keep the head in full precision (TernaryQAT's default rule)."
        )


@dataclass
class _Plan:
    """How each tensor of the model is written."""

    gguf: object
    ternary_type: str
    float_type: str
    fallback_type: str
    layers: dict[str, BitLinear]
    export: GGUFExport

    def qtype(self, name: str):
        return getattr(self.gguf.GGMLQuantizationType, name)

    def float_array(self, weight: torch.Tensor, qtype_name: str, name: str) -> tuple[np.ndarray, object]:
        if qtype_name == "Q8_0" and weight.shape[-1] % Q8_0_BLOCK:
            warnings.warn(f"save_gguf: {name}'s rows are not a multiple of {Q8_0_BLOCK}; written as F16", stacklevel=3)
            qtype_name = "F16"
        array = weight.detach().float().cpu().numpy()
        qtype = self.qtype(qtype_name)
        return self.gguf.quants.quantize(array, qtype), qtype

    def linear(self, module_name: str, module: nn.Module, rows: Callable[[torch.Tensor], torch.Tensor]):
        """The tensor and type of a Linear: TQ for a ternary/binary layer that fits, else a float type."""
        layer = self.layers.get(module_name)
        if layer is None:
            return self.float_array(rows(module.weight), self.float_type, module_name)
        codes, scale = ref.weight_codes(layer.weight, layer.bits)
        values = ref.dequantize(rows(codes), rows(scale) if scale.dim() else scale)  # 2 bits: a scale per row
        why = fallback_reason(layer)
        if why:
            self.export.fallback[module_name] = why
            return self.float_array(values, self.fallback_type, module_name)
        self.export.quantized.append(module_name)
        if self.ternary_type not in TQ_TYPES:
            return self.float_array(values, self.ternary_type, module_name)
        qtype = self.qtype(self.ternary_type)
        # A block lies in one row and its nonzero values are all +-(the row's scale): the block maximum TQ
        # quantization takes as its scale is that scale, and the codes come back exactly.
        return self.gguf.quants.quantize(values.cpu().numpy(), qtype), qtype


def _write_metadata(writer, config, name: str) -> None:
    writer.add_name(name)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads or config.num_attention_heads)
    writer.add_layer_norm_rms_eps(float(config.rms_norm_eps))
    writer.add_rope_freq_base(_rope_theta(config))
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    writer.add_rope_dimension_count(head_dim)
    if head_dim * config.num_attention_heads != config.hidden_size:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_vocab_size(config.vocab_size)


def _write_vocab(writer, vocab: str) -> None:
    if vocab == "none":
        writer.add_tokenizer_model("none")
        return
    # llama.cpp's SentencePiece-style tokenizer over byte tokens alone, every byte its own token; it writes
    # a space as "\u2581" before looking tokens up, so the space byte is that one normal token.
    tokens = [f"<0x{i:02X}>" for i in range(256)]
    types = [BYTE_TOKEN] * 256
    tokens[SPACE], types[SPACE] = SPM_SPACE, NORMAL_TOKEN
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * 256)
    writer.add_token_types(types)
    for add_id in (writer.add_bos_token_id, writer.add_eos_token_id, writer.add_unk_token_id):
        add_id(0)  # the NUL byte, which the text data never holds (binary files are refused)
    writer.add_add_bos_token(False)
    writer.add_add_eos_token(False)
    writer.add_add_space_prefix(False)


def _tensors(plan: _Plan, llama: nn.Module):
    """(GGUF name, array, type) for every tensor of the model, in llama.cpp's order."""
    config, body = llama.config, llama.model
    f32 = plan.qtype("F32")
    kv_heads = config.num_key_value_heads or config.num_attention_heads
    permutes = {"attn_q": config.num_attention_heads, "attn_k": kv_heads}
    yield ("token_embd.weight", *plan.float_array(body.embed_tokens.weight, plan.float_type, "model.embed_tokens"))
    for i, block in enumerate(body.layers):
        for path, short in LAYER_TENSORS.items():
            module = block.get_submodule(path)
            full = f"model.layers.{i}.{path}"
            if short.endswith("norm"):
                yield f"blk.{i}.{short}.weight", module.weight.detach().float().cpu().numpy(), f32
                continue
            heads = permutes.get(short)
            rows = (lambda t, h=heads: permute_rotary(t, h)) if heads else (lambda t: t)
            yield (f"blk.{i}.{short}.weight", *plan.linear(full, module, rows))
    yield "output_norm.weight", body.norm.weight.detach().float().cpu().numpy(), f32
    if not config.tie_word_embeddings:  # llama.cpp uses token_embd as the head when `output` is absent
        yield ("output.weight", *plan.linear("lm_head", llama.lm_head, lambda t: t))


def save_gguf(
    model: nn.Module,
    path: str | os.PathLike,
    ternary_type: str = "TQ2_0",
    float_type: str = "F16",
    fallback_type: str = "F16",
    vocab: str = "bytes",
    name: str = "lightning_hybrid ternary llama",
) -> GGUFExport:
    """Write `model` (a transformers LlamaForCausalLM, or a module holding one, whose Linears TernaryQAT
    or `convert` quantized) to the GGUF file `path` (module doc: types, fallbacks, vocabularies)."""
    gguf = _gguf()
    check_gguf_settings(model, ternary_type, float_type, fallback_type, vocab)
    llama = _llama(model)
    layers = bit_linears(llama)
    if not layers:
        raise ValueError(f"{type(llama).__name__} has no quantized layer: run TernaryQAT (or convert) first.")
    _refuse(llama, layers)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    export = GGUFExport(out, 0, ternary_type)
    plan = _Plan(gguf, ternary_type, float_type, fallback_type, layers, export)
    writer = gguf.GGUFWriter(str(out), "llama")
    _write_metadata(writer, llama.config, name)
    _write_vocab(writer, vocab)
    writer.add_file_type(getattr(gguf.LlamaFileType, "ALL_F32" if ternary_type == "F32" else f"MOSTLY_{ternary_type}"))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    with torch.no_grad():
        for tensor_name, array, qtype in _tensors(plan, llama):
            writer.add_tensor(tensor_name, array, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    if export.fallback:
        listed = "; ".join(f"{n}: {why}" for n, why in export.fallback.items())
        warnings.warn(
            f"save_gguf wrote {len(export.fallback)} quantized layer(s) at {fallback_type}: {listed}", stacklevel=2
        )
    _warn_activation_bits(layers)
    export.file_bytes = out.stat().st_size
    return export


def _warn_activation_bits(layers: dict[str, BitLinear]) -> None:
    other = sorted({str(layer.act_bits) for layer in layers.values() if layer.act_bits != 8})
    if other:
        warnings.warn(
            f"save_gguf: some layers quantize activations to {', '.join(other)} bits; llama.cpp computes TQ layers "
            "on 8-bit activation blocks, so its outputs differ from this model's.",
            stacklevel=3,
        )
