"""save_gguf: the `gguf` package's own reader and dequantizers are the oracle for the file (our codes times
the scale rounded to fp16, exactly). Models are tiny transformers Llamas built from configs, with odd
sizes. What llama.cpp computes from the files: test_llama_cpp.py."""

import warnings

import numpy as np
import pytest
import torch

from helpers.tiny_llama import tiny_llama as _llama
from lightning_hybrid.export import save_gguf
from lightning_hybrid.export.gguf_llama import permute_rotary
from lightning_hybrid.quant import bit_linears, convert
from lightning_hybrid.quant import reference as ref

transformers = pytest.importorskip("transformers")
gguf = pytest.importorskip("gguf", reason="the gguf extra: pip install 'lightning_hybrid[gguf]'")


def _tensors(path):
    return {t.name: t for t in gguf.GGUFReader(path).tensors}


def _decoded(tensor) -> torch.Tensor:
    values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
    return torch.from_numpy(np.array(values, dtype=np.float32))  # a writable copy


def _fp16(t: torch.Tensor) -> torch.Tensor:
    return t.to(torch.float16).float()


def _save(model, path, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        export = save_gguf(model, path, **kwargs)
    return export, [str(w.message) for w in caught]


def test_permute_rotary_interleaves_each_heads_halves():
    # oracle: llama.cpp's layout written out by index: row 2i of a head holds its row i, row 2i+1 its row D/2 + i
    heads, dim = 3, 8
    rows = torch.arange(heads * dim).float().unsqueeze(1)
    want = [h * dim + (j // 2 if j % 2 == 0 else dim // 2 + j // 2) for h in range(heads) for j in range(dim)]
    assert permute_rotary(rows, heads).squeeze(1).tolist() == want


@pytest.mark.parametrize("ternary_type", ["TQ2_0", "TQ1_0"])
def test_the_ternary_tensors_decode_to_our_codes_times_the_fp16_scale(tmp_path, ternary_type):
    model = _llama(intermediate=320)  # ffn_down's rows (320) are no multiple of 256: the F16 fallback
    convert(model)
    export, messages = _save(model, tmp_path / "m.gguf", ternary_type=ternary_type, float_type="F32")
    tensors = _tensors(tmp_path / "m.gguf")
    layers = bit_linears(model)
    assert sorted(export.fallback) == ["model.layers.0.mlp.down_proj", "model.layers.1.mlp.down_proj"]
    assert any("model.layers.0.mlp.down_proj" in m and "320" in m for m in messages)
    assert len(export.quantized) == 12 and export.file_bytes == (tmp_path / "m.gguf").stat().st_size
    for i in range(2):
        for module, name, heads in [
            ("self_attn.q_proj", "attn_q", 4),
            ("self_attn.k_proj", "attn_k", 2),
            ("self_attn.v_proj", "attn_v", None),
            ("mlp.gate_proj", "ffn_gate", None),
            ("mlp.down_proj", "ffn_down", None),
        ]:
            codes, scale = ref.ternary_codes(layers[f"model.layers.{i}.{module}"].weight)
            if heads:
                codes = permute_rotary(codes, heads)
            tensor = tensors[f"blk.{i}.{name}.weight"]
            kind = "F16" if name == "ffn_down" else ternary_type
            assert tensor.tensor_type.name == kind
            torch.testing.assert_close(_decoded(tensor), codes.float() * _fp16(scale), rtol=0, atol=0)
    embed = _decoded(tensors["token_embd.weight"])
    torch.testing.assert_close(embed, model.model.embed_tokens.weight, rtol=0, atol=0)
    torch.testing.assert_close(_decoded(tensors["output.weight"]), model.lm_head.weight, rtol=0, atol=0)
    norm = _decoded(tensors["blk.1.ffn_norm.weight"])
    torch.testing.assert_close(norm, model.model.layers[1].post_attention_layernorm.weight, rtol=0, atol=0)


def test_binary_and_two_bit_layers_are_tq_and_four_bit_ones_fall_back(tmp_path):
    model = _llama()
    convert(model, bits=1.0, include=["*q_proj", "*o_proj"])
    convert(model, bits=2.0, include=["*up_proj"])
    convert(model, bits=4.0, include=["*gate_proj"])
    export, messages = _save(model, tmp_path / "m.gguf")
    tensors = _tensors(tmp_path / "m.gguf")
    layers = bit_linears(model)
    for module, name in [("self_attn.o_proj", "attn_output"), ("mlp.up_proj", "ffn_up")]:
        layer = layers[f"model.layers.0.{module}"]
        codes, scale = ref.weight_codes(layer.weight, layer.bits)  # 2 bits: one scale per row
        assert tensors[f"blk.0.{name}.weight"].tensor_type.name == "TQ2_0"
        torch.testing.assert_close(_decoded(tensors[f"blk.0.{name}.weight"]), codes.float() * _fp16(scale))
    gate = layers["model.layers.0.mlp.gate_proj"]
    assert "more than three levels" in export.fallback["model.layers.0.mlp.gate_proj"]
    assert tensors["blk.0.ffn_gate.weight"].tensor_type.name == "F16"
    torch.testing.assert_close(_decoded(tensors["blk.0.ffn_gate.weight"]), _fp16(ref.quantize_weight(gate.weight, 4)))
    assert any("gate_proj" in m for m in messages)


def test_embeddings_and_head_at_q8_0_and_the_metadata_llama_cpp_requires(tmp_path):
    model = _llama(kv_heads=1)
    convert(model)
    _save(model, tmp_path / "m.gguf", float_type="Q8_0")
    reader = gguf.GGUFReader(tmp_path / "m.gguf")
    tensors = {t.name: t for t in reader.tensors}
    assert tensors["token_embd.weight"].tensor_type.name == "Q8_0"
    # oracle: gguf's own Q8_0 of the float weight
    q8_0 = gguf.GGMLQuantizationType.Q8_0
    want = gguf.quants.dequantize(gguf.quants.quantize(model.lm_head.weight.detach().numpy(), q8_0), q8_0)
    head = tensors["output.weight"]
    np.testing.assert_array_equal(gguf.quants.dequantize(head.data, head.tensor_type), want)
    fields = {name: field.contents() for name, field in reader.fields.items() if not name.startswith("GGUF.")}
    assert fields["general.architecture"] == "llama"
    assert fields["llama.embedding_length"] == 256 and fields["llama.block_count"] == 2
    assert fields["llama.attention.head_count"] == 4 and fields["llama.attention.head_count_kv"] == 1
    assert fields["llama.feed_forward_length"] == 512 and fields["llama.context_length"] == 64
    assert fields["llama.rope.dimension_count"] == 64
    assert (
        fields["tokenizer.ggml.tokens"][:2] == ["<0x00>", "<0x01>"] and fields["tokenizer.ggml.tokens"][32] == "\u2581"
    )


def test_a_tied_head_is_left_to_llama_cpp_which_reuses_the_embeddings(tmp_path):
    model = _llama(tie_word_embeddings=True)
    convert(model)
    _save(model, tmp_path / "m.gguf")
    assert "output.weight" not in _tensors(tmp_path / "m.gguf")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"ternary_type": "TQ3_0"}, "`ternary_type` must be one of 'TQ2_0', 'TQ1_0', 'F16', 'F32'; got 'TQ3_0'"),
        ({"float_type": "Q4_0"}, "`float_type` must be one of"),
        ({"fallback_type": "Q8_0"}, "`fallback_type` must be one of 'F16', 'F32'"),
        ({"vocab": "spm"}, "`vocab` must be one of 'bytes', 'none'"),
    ],
)
def test_bad_arguments_are_refused_by_name(tmp_path, kwargs, match):
    model = _llama()
    convert(model)
    with pytest.raises(ValueError, match=match):
        save_gguf(model, tmp_path / "m.gguf", **kwargs)
    assert not (tmp_path / "m.gguf").exists()


def test_what_llama_cpp_would_read_differently_is_refused(tmp_path):
    with pytest.raises(ValueError, match="Llama-architecture models.*Sequential holds 0"):
        save_gguf(torch.nn.Sequential(torch.nn.Linear(4, 4)), tmp_path / "m.gguf")
    with pytest.raises(ValueError, match="does not write biases; this Llama has attention_bias=True"):
        save_gguf(_llama(attention_bias=True), tmp_path / "m.gguf")
    with pytest.raises(ValueError, match="vocab='bytes'.*vocab_size=300: use vocab='none'"):
        save_gguf(_llama(vocab=300), tmp_path / "m.gguf")
    with pytest.raises(ValueError, match="no quantized layer: run TernaryQAT"):
        save_gguf(_llama(), tmp_path / "m.gguf")
    model = _llama()
    convert(model)
    bit_linears(model)["model.layers.1.mlp.up_proj"].quant_lambda = 0.5
    with pytest.raises(ValueError, match="'model.layers.1.mlp.up_proj': it is still in its quantization warm-up"):
        save_gguf(model, tmp_path / "m.gguf")
    tied = _llama(tie_word_embeddings=True)
    convert(tied, exclude=[])
    with pytest.raises(ValueError, match="'lm_head': it is quantized but tied to the embeddings"):
        save_gguf(tied, tmp_path / "m.gguf")
    assert not (tmp_path / "m.gguf").exists()


def test_a_model_without_a_byte_vocabulary_is_written_with_none(tmp_path):
    model = _llama(vocab=300)
    convert(model)
    _save(model, tmp_path / "m.gguf", vocab="none")
    fields = gguf.GGUFReader(tmp_path / "m.gguf").fields
    assert fields["tokenizer.ggml.model"].contents() == "none" and "tokenizer.ggml.tokens" not in fields
