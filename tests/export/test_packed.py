"""Packed export: round trip, bit-exact eval outputs, sizes, and every corrupt-file case."""

import json
import struct

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from helpers.models import NestedClassifier
from lightning_hybrid.export import PackedFileError, load_packed, round_like_export, save_packed
from lightning_hybrid.models import GPT, GPTConfig
from lightning_hybrid.quant import PackedBitLinear, bit_linears, convert
from lightning_hybrid.quant import reference as ref


def _gpt(seed=0, tie_head=False):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=37, block_size=16, n_layer=2, n_head=2, n_embd=24, tie_head=tie_head))


def _qat_gpt(bits=1.58, seed=0, tie_head=False):
    model = _gpt(seed, tie_head)
    convert(model, bits=bits)
    return model.eval()


@pytest.mark.parametrize("bits,layout", [(1.58, "2bit"), (1.58, "base3"), (1, "2bit")])
def test_round_trip_eval_outputs_are_bit_exact(tmp_path, bits, layout, monkeypatch):
    qat = _qat_gpt(bits)
    idx = torch.randint(0, 37, (3, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = qat(idx)
    save_packed(qat, tmp_path / "m.safetensors", layout=layout)
    fresh = load_packed(_gpt(seed=123).eval(), tmp_path / "m.safetensors")  # other init, unconverted
    packed_layers = [m for m in fresh.modules() if isinstance(m, PackedBitLinear)]
    assert len(packed_layers) == 8
    # oracle: the QAT model, exact on a CPU both on the default path (int8 matmuls) and the reference
    with torch.no_grad():
        torch.testing.assert_close(fresh(idx), expected, rtol=0, atol=0)
        monkeypatch.setenv("LIGHTNING_HYBRID_KERNELS", "torch")
        torch.testing.assert_close(fresh(idx), expected, rtol=0, atol=0)


def test_unpacked_codes_equal_the_reference_codes(tmp_path):
    qat = _qat_gpt()
    save_packed(qat, tmp_path / "m.safetensors", layout="base3")
    fresh = load_packed(_gpt(seed=5), tmp_path / "m.safetensors")
    for name, layer in bit_linears(qat).items():
        codes, scale = ref.ternary_codes(layer.weight)
        restored = fresh.get_submodule(name)
        assert torch.equal(restored.unpacked_weight(), ref.dequantize(codes, scale))


def test_binary_layers_are_packed_at_one_bit(tmp_path):
    report = save_packed(_qat_gpt(bits=1), tmp_path / "m.safetensors", layout="base3")
    assert {la.layout for la in report.layers} == {"1bit"}
    assert report.quantized_bits_per_weight == pytest.approx(1.0)


def test_report_sizes(tmp_path):
    qat = _qat_gpt()
    report = save_packed(qat, tmp_path / "m.safetensors", layout="2bit")
    quantized = sum(m.weight.numel() for m in bit_linears(qat).values())
    assert sum(la.numel for la in report.layers) == quantized
    assert report.quantized_bits_per_weight == pytest.approx(2.0)
    unique = {p.data_ptr(): p for p in qat.state_dict().values()}.values()
    assert report.fp32_bytes == 4 * sum(t.numel() for t in unique)  # tied head counted once
    assert report.bf16_bytes == report.fp32_bytes // 2
    assert report.file_bytes == (tmp_path / "m.safetensors").stat().st_size
    # Embeddings (shared with the head) stay fp32 and are stored once: the file is the packed weights,
    # the fp32 remainder and the header.
    rest = report.fp32_bytes - 4 * quantized
    assert rest + quantized // 4 < report.file_bytes < rest + quantized // 4 + 8192
    assert "bits/weight" in report.table() and "x)" in report.summary()
    base3 = save_packed(qat, tmp_path / "b.safetensors", layout="base3")
    assert base3.file_bytes < report.file_bytes
    assert base3.quantized_bits_per_weight == pytest.approx(1.6, abs=0.01)


def test_bf16_float_dtype_halves_the_unquantized_tensors_and_loads_back_rounded(tmp_path):
    qat = _qat_gpt()
    full = save_packed(qat, tmp_path / "f.safetensors")
    half = save_packed(qat, tmp_path / "h.safetensors", float_dtype="bf16")
    with safe_open(tmp_path / "h.safetensors", "pt") as f:
        assert f.get_tensor("tok_emb.weight").dtype == torch.bfloat16
        scale_key = next(k for k in list(f.keys()) if k.endswith("weight_scale"))
        assert f.get_tensor(scale_key).dtype == torch.float32
    quantized = sum(m.weight.numel() for m in bit_linears(qat).values())
    rest_fp32 = full.fp32_bytes - 4 * quantized
    assert full.file_bytes - half.file_bytes == pytest.approx(rest_fp32 / 2, abs=1024)  # headers differ a little
    fresh = load_packed(_gpt(seed=3), tmp_path / "h.safetensors")
    assert fresh.tok_emb.weight.dtype == torch.float32
    # oracle: the fp32 embedding rounded to bf16 and back
    assert torch.equal(fresh.tok_emb.weight, qat.tok_emb.weight.detach().to(torch.bfloat16).float())


def test_round_like_export_makes_the_model_compute_what_the_bf16_file_loads_as(tmp_path):
    qat = _qat_gpt()
    latent = {name: layer.weight.detach().clone() for name, layer in bit_linears(qat).items()}
    save_packed(qat, tmp_path / "h.safetensors", float_dtype="bf16")
    idx = torch.randint(0, 37, (3, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        unrounded = qat(idx)
        round_like_export(qat, "bf16")
        rounded = qat(idx)
        loaded = load_packed(_gpt(seed=3).eval(), tmp_path / "h.safetensors")(idx)
    # oracle: the model loaded from the bf16 file, exact on a CPU (as the fp32 round trip above)
    torch.testing.assert_close(rounded, loaded, rtol=0, atol=0)
    assert not torch.equal(rounded, unrounded)  # the rounding is not a no-op on this model
    for name, layer in bit_linears(qat).items():  # quantized weights keep their full-precision values
        assert torch.equal(layer.weight, latent[name]), name


def test_unknown_float_dtype_is_named(tmp_path):
    with pytest.raises(ValueError, match="`float_dtype` must be one of None, 'fp32', 'bf16', 'fp16', .*; got 'int4'"):
        save_packed(_qat_gpt(), tmp_path / "m.safetensors", float_dtype="int4")


def test_tied_weights_stored_once_and_restored_tied_values(tmp_path):
    qat = _qat_gpt(tie_head=True)
    save_packed(qat, tmp_path / "m.safetensors")
    with safe_open(tmp_path / "m.safetensors", "pt") as f:
        keys = set(f.keys())
        aliases = json.loads(f.metadata()["aliases"])
    assert "tok_emb.weight" in keys and "lm_head.weight" not in keys
    assert aliases == {"lm_head.weight": "tok_emb.weight"}
    fresh = load_packed(_gpt(seed=9, tie_head=True), tmp_path / "m.safetensors")
    assert torch.equal(fresh.lm_head.weight, qat.tok_emb.weight)


def test_nested_lightning_module_round_trip(tmp_path):
    torch.manual_seed(0)
    qat = NestedClassifier()
    convert(qat)
    x = torch.randn(5, 16)
    expected = qat.eval()(x)
    save_packed(qat, tmp_path / "m.safetensors")
    out = load_packed(NestedClassifier().eval(), tmp_path / "m.safetensors")(x)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


def test_export_refuses_mid_warmup_and_unconverted_models(tmp_path):
    qat = _qat_gpt()
    for layer in bit_linears(qat).values():
        layer.quant_lambda = 0.5
    with pytest.raises(ValueError, match=r"in quantization warm-up \(quant_lambda=0.5\)"):
        save_packed(qat, tmp_path / "m.safetensors")
    with pytest.raises(ValueError, match="GPT has no BitLinear layer: convert it"):
        save_packed(_gpt(), tmp_path / "m.safetensors")
    with pytest.raises(ValueError, match="`layout` must be one of .*got '4bit'"):
        save_packed(_qat_gpt(), tmp_path / "m.safetensors", layout="4bit")


@pytest.fixture
def packed_file(tmp_path):
    path = tmp_path / "m.safetensors"
    save_packed(_qat_gpt(), path)
    return path


def test_truncated_file_is_an_error(packed_file):
    data = packed_file.read_bytes()
    packed_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(PackedFileError, match="not a readable packed file"):
        load_packed(_gpt(), packed_file)


def test_garbage_file_is_an_error(tmp_path):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"this is not a safetensors file at all")
    with pytest.raises(PackedFileError, match="not a readable packed file"):
        load_packed(_gpt(), path)


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(PackedFileError, match="not a readable packed file"):
        load_packed(_gpt(), tmp_path / "nope.safetensors")


def test_flipped_payload_byte_is_caught_by_checksum(packed_file):
    data = bytearray(packed_file.read_bytes())
    data[-10] ^= 0xFF  # inside the last tensor's payload: the header still parses
    packed_file.write_bytes(bytes(data))
    with pytest.raises(PackedFileError, match="is corrupt: its tensors do not match the stored sha256"):
        load_packed(_gpt(), packed_file)


def _rewrite_metadata(path, **changes):
    with safe_open(path, "pt") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    meta.update(changes)
    save_file(tensors, path, metadata={k: v for k, v in meta.items() if v is not None})


def test_unknown_format_version_is_an_error(packed_file):
    _rewrite_metadata(packed_file, format_version="99")
    with pytest.raises(
        PackedFileError, match="has packed format version '99'; this lightning_hybrid reads versions 1, 2"
    ):
        load_packed(_gpt(), packed_file)


def test_foreign_safetensors_file_is_an_error(tmp_path):
    path = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, path)
    with pytest.raises(PackedFileError, match="is not a lightning_hybrid packed file"):
        load_packed(_gpt(), path)


def test_file_for_another_model_is_an_error(packed_file):
    other = GPT(GPTConfig(vocab_size=37, block_size=16, n_layer=3, n_head=2, n_embd=24))
    with pytest.raises(PackedFileError, match="was saved from another model: keys missing from the file"):
        load_packed(other, packed_file)
    wider = GPT(GPTConfig(vocab_size=37, block_size=16, n_layer=2, n_head=2, n_embd=32))
    with pytest.raises(PackedFileError, match="shapes that differ"):
        load_packed(wider, packed_file)


def test_invalid_packed_codes_are_an_error_even_with_matching_checksum(packed_file):
    with safe_open(packed_file, "pt") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    tensors["blocks.0.mlp.fc.weight_packed"] = torch.full_like(tensors["blocks.0.mlp.fc.weight_packed"], 255)
    from lightning_hybrid.export.packed import _digest

    meta["sha256"] = _digest(tensors)  # a writer bug, not a bit flip: the checksum agrees
    save_file(tensors, packed_file, metadata=meta)
    with pytest.raises(PackedFileError, match=r"is corrupt: layer 'blocks.0.mlp.fc': a 2-bit field holds 3"):
        load_packed(_gpt(), packed_file)


def test_header_length_corruption_is_an_error(packed_file):
    data = bytearray(packed_file.read_bytes())
    data[:8] = struct.pack("<Q", 10**12)
    packed_file.write_bytes(bytes(data))
    with pytest.raises(PackedFileError, match="not a readable packed file"):
        load_packed(_gpt(), packed_file)
