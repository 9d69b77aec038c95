"""save_transformers: transformers' own loader and layers are the oracle. A tiny Llama built from a config,
converted by us, saved, and loaded by AutoModelForCausalLM gives our logits (fp32: relative 1e-5); the
byte layout decodes to our codes with transformers' own unpacker; what it cannot represent is refused."""

import json

import pytest
import torch

from lightning_hybrid.export import save_transformers
from lightning_hybrid.export.transformers_bitnet import pack_output_rows, unpack_output_rows
from lightning_hybrid.quant import bit_linears, convert
from lightning_hybrid.quant import reference as ref

transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")  # transformers' BitNet loader needs it


@pytest.fixture(autouse=True)
def _no_compile():
    # transformers' BitLinear compiles its activation quantizer: seconds per shape on a CPU, same numbers
    with torch._dynamo.config.patch(disable=True):
        yield


def _llama(tie=False, intermediate=128, seed=0):
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=96,
        hidden_size=64,
        intermediate_size=intermediate,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=32,
        tie_word_embeddings=tie,
    )
    return transformers.LlamaForCausalLM(config).eval()


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_the_packed_bytes_decode_to_our_codes_with_transformers_unpacker():
    from transformers.integrations.bitnet import unpack_weights

    torch.manual_seed(0)
    codes = torch.randint(-1, 2, (12, 7), dtype=torch.int8)
    packed = pack_output_rows(codes)
    assert packed.shape == (3, 7) and packed.dtype == torch.uint8
    assert torch.equal(unpack_weights(packed, dtype=torch.float32), codes.float())
    assert torch.equal(unpack_output_rows(packed), codes)


@pytest.mark.parametrize("tie", [False, True], ids=["separate-head", "tied-head"])
def test_a_converted_llama_loads_in_transformers_with_our_logits(tmp_path, tie):
    model = _llama(tie=tie)
    report = convert(model)
    ids = torch.randint(0, 96, (2, 16), generator=torch.Generator().manual_seed(1))
    ours = _logits(model, ids)
    export = save_transformers(model, tmp_path)
    assert export.not_converted == ["lm_head"] and len(export.quantized) == len(report.converted) == 14
    loaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    layer = loaded.model.layers[0].mlp.down_proj
    assert type(layer).__name__ == "BitLinear" and layer.weight.dtype == torch.uint8
    theirs = _logits(loaded, ids)
    torch.testing.assert_close(theirs, ours, rtol=1e-5, atol=1e-5)
    assert torch.equal(theirs.argmax(-1), ours.argmax(-1))


def test_a_layer_left_unconverted_is_listed_and_loads_in_full_precision(tmp_path):
    model = _llama()
    convert(model, exclude=["lm_head", "model.layers.1.mlp.*"])
    ids = torch.randint(0, 96, (1, 12), generator=torch.Generator().manual_seed(2))
    ours = _logits(model, ids)
    export = save_transformers(model, tmp_path)
    kept = {"lm_head", "model.layers.1.mlp.gate_proj", "model.layers.1.mlp.up_proj", "model.layers.1.mlp.down_proj"}
    config = json.loads((tmp_path / "config.json").read_text())["quantization_config"]
    assert set(export.not_converted) == set(config["modules_to_not_convert"]) == kept
    assert config["quant_method"] == "bitnet" and config["quantization_mode"] == "offline"
    loaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
    assert type(loaded.model.layers[1].mlp.up_proj) is torch.nn.Linear
    torch.testing.assert_close(_logits(loaded, ids), ours, rtol=1e-5, atol=1e-5)


def test_the_scale_is_stored_as_its_reciprocal_in_the_models_dtype(tmp_path):
    from safetensors.torch import load_file

    model = _llama()
    convert(model)
    save_transformers(model, tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    weight = model.model.layers[0].self_attn.q_proj.weight
    _, scale = ref.ternary_codes(weight)
    stored = tensors["model.layers.0.self_attn.q_proj.weight_scale"]
    assert stored.dtype == torch.float32 and stored.shape == (1,)
    torch.testing.assert_close(stored, (1 / scale).reshape(1), rtol=0, atol=0)


def _warming_up(model):
    convert(model)
    for layer in bit_linears(model).values():
        layer.quant_lambda = 0.5


@pytest.mark.parametrize(
    ("prepare", "match"),
    [
        (lambda m: convert(m, bits=1), "1-bit weights; transformers' BitNet layers are 1.58-bit"),
        (lambda m: convert(m, act_bits=4), "quantizes activations to 4 bits"),
        (_warming_up, r"still in its quantization warm-up \(lambda 0.5 < 1\)"),
    ],
    ids=["binary", "act-bits", "warm-up"],
)
def test_what_transformers_cannot_represent_is_refused_by_layer(tmp_path, prepare, match):
    model = _llama()
    prepare(model)
    with pytest.raises(ValueError, match=f"cannot write layer 'model.layers.0.self_attn.q_proj': .*{match}"):
        save_transformers(model, tmp_path)
    assert not (tmp_path / "model.safetensors").exists()  # nothing half-written


def test_out_features_not_a_multiple_of_four_are_refused(tmp_path):
    model = _llama(intermediate=66)
    convert(model)
    with pytest.raises(ValueError, match=r"'model.layers.0.mlp.gate_proj': its out_features \(66\) is not a multiple"):
        save_transformers(model, tmp_path)


def test_an_unquantized_model_is_refused(tmp_path):
    with pytest.raises(ValueError, match="has no quantized layer"):
        save_transformers(_llama(), tmp_path)


def test_a_given_tokenizer_is_saved_beside_the_weights(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0, **{word: i + 1 for i, word in enumerate(["the", "cat", "sat", "on", "a", "mat"])}}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = transformers.PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]")
    model = _llama()
    convert(model)
    save_transformers(model, tmp_path, tokenizer=tokenizer)
    reloaded = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded("the cat sat on a dog")["input_ids"] == [1, 2, 3, 4, 5, 0]


def test_a_quantized_head_tied_to_the_embedding_is_refused(tmp_path):
    model = _llama(tie=True)
    convert(model, exclude=[])  # the tied head too
    with pytest.raises(ValueError, match=r"'lm_head': its weight is shared with model.embed_tokens; untie it"):
        save_transformers(model, tmp_path)
