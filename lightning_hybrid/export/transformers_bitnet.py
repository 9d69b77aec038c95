"""save_transformers: a Hugging Face model whose Linears TernaryQAT quantized, written as a transformers
BitNet checkpoint that `AutoModelForCausalLM.from_pretrained` (or the model's own class) loads with our
logits.

transformers' BitNet layer (its integrations/bitnet.py; quantization_config quant_method "bitnet",
linear_class "bitlinear", quantization_mode "offline") computes what BitLinear(bits=1.58, act_bits=8)
computes: ternary codes times one absmean scale per tensor, on activations quantized per token to int8
by absmax. Its tensors differ from ours:
  weight        uint8 [out/4, in]: byte row r holds output rows r, r + R, r + 2R and r + 3R (R = out/4)
                in bits 0-1, 2-3, 4-5 and 6-7, each code c stored as c + 1;
  weight_scale  [1] in the model's dtype, the reciprocal of our scale (the layer divides by it).
Its loader allocates out/4 rows, so a layer whose out_features is not a multiple of 4 cannot be loaded;
such a layer, a layer of other weight or activation bits, and a model still in its quantization warm-up
are refused, naming the layer. Every other Linear (the head, any layer TernaryQAT skipped) is written at
full precision and listed in `modules_to_not_convert`.

The scale is kept in the model's dtype by transformers: exact enough in fp32 (logits within 1e-6
relative of ours), rounded to 8 significant bits in bf16.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from lightning_hybrid.quant import reference as ref
from lightning_hybrid.quant.linear import BitLinear, bit_linears

ROWS_PER_BYTE = 4  # codes of 2 bits, one per output row


@dataclass
class TransformersExport:
    """What `save_transformers` wrote: the directory, the quantized layers and those kept in full precision."""

    directory: Path
    quantized: list[str] = field(default_factory=list)
    not_converted: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (
            f"transformers BitNet checkpoint in {self.directory}: {len(self.quantized)} ternary layers, "
            f"{len(self.not_converted)} kept in full precision ({', '.join(self.not_converted) or 'none'})"
        )


def pack_output_rows(codes: torch.Tensor) -> torch.Tensor:
    """Ternary codes [out, in] (out a multiple of 4) in transformers' packed layout (module doc)."""
    out, _ = codes.shape
    if out % ROWS_PER_BYTE:
        raise ValueError(f"the packed layout needs out_features divisible by {ROWS_PER_BYTE}, got {out}.")
    shifted = (codes.to(torch.int16) + 1).to(torch.uint8).reshape(ROWS_PER_BYTE, out // ROWS_PER_BYTE, -1)
    packed = torch.zeros_like(shifted[0])
    for i in range(ROWS_PER_BYTE):
        packed |= shifted[i] << (2 * i)
    return packed


def unpack_output_rows(packed: torch.Tensor) -> torch.Tensor:
    """The ternary codes (int8 [4 x rows, in]) of transformers' packed layout."""
    parts = [((packed >> (2 * i)) & 3).to(torch.int8) - 1 for i in range(ROWS_PER_BYTE)]
    return torch.cat(parts, dim=0)


def _refusal(name: str, layer: BitLinear) -> str | None:
    """Why transformers' BitNet layer cannot stand in for `layer`, or None."""
    if layer.bits != 1.58:
        return f"it has {layer.bits}-bit weights; transformers' BitNet layers are 1.58-bit (ternary) only"
    if layer.act_bits != 8:
        return f"it quantizes activations to {layer.act_bits} bits; transformers' BitNet layers use 8"
    if layer.out_features % ROWS_PER_BYTE:
        return (
            f"its out_features ({layer.out_features}) is not a multiple of {ROWS_PER_BYTE}: transformers' loader "
            "allocates out_features / 4 packed rows and would fail on it"
        )
    if layer.quant_lambda < 1.0:
        return f"it is still in its quantization warm-up (lambda {layer.quant_lambda:g} < 1): train to the end"
    return None


def _tied_refusals(model: nn.Module, layers: dict[str, BitLinear]) -> dict[str, str]:
    """Quantized layers whose weight another module shares (a tied head converted with exclude=[]): the
    checkpoint would hold packed codes where transformers ties a float tensor."""
    owners: dict[int, list[str]] = {}
    for name, module in model.named_modules(remove_duplicate=False):
        weight = getattr(module, "weight", None)
        if isinstance(weight, torch.Tensor):
            owners.setdefault(id(weight), []).append(name)
    return {
        name: f"its weight is shared with {', '.join(n for n in owners[id(layer.weight)] if n != name)}; untie it"
        for name, layer in layers.items()
        if len(owners[id(layer.weight)]) > 1
    }


def _hugging_face_model(model: nn.Module) -> nn.Module:
    """`model` if it is a transformers PreTrainedModel, else its one PreTrainedModel submodule."""
    from transformers import PreTrainedModel

    if isinstance(model, PreTrainedModel):
        return model
    found = [m for m in model.modules() if isinstance(m, PreTrainedModel)]  # an outer one before its parts
    inside_first = set(found[0].modules()) if found else set()
    outermost = [m for m in found if m not in inside_first] + found[:1]
    if len(outermost) != 1:
        raise ValueError(
            f"save_transformers needs a transformers PreTrainedModel (or a module holding exactly one); "
            f"{type(model).__name__} holds {len(outermost)}."
        )
    return outermost[0]


def _model_dtype(model: nn.Module) -> torch.dtype:
    dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    if len(dtypes) != 1:
        raise ValueError(f"save_transformers writes one dtype, as transformers loads one; the model has {dtypes}.")
    return dtypes.pop()


def _tensors(model: nn.Module, layers: dict[str, BitLinear], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors: every state_dict entry, the quantized weights re-packed; a tensor tied to
    an earlier one (a tied head) is left to transformers, which ties it again on load."""
    tied = getattr(model.config, "tie_word_embeddings", False)
    tensors, seen = {}, set()
    for key, value in model.state_dict().items():
        identity = (value.data_ptr(), tuple(value.shape))  # the same memory seen as the same tensor
        if identity in seen and value.numel():
            if tied:
                continue
            value = value.clone()  # untied in the config, shared in memory: stored twice
        seen.add(identity)
        tensors[key] = value.detach().contiguous()
    for name, layer in layers.items():
        codes, scale = ref.ternary_codes(layer.weight)
        tensors[f"{name}.weight"] = pack_output_rows(codes)
        tensors[f"{name}.weight_scale"] = (1.0 / scale).reshape(1).to(dtype)
    return tensors


def check_transformers_settings(model: nn.Module, bits: float | None, act_bits: int | None) -> None:
    """What save_transformers will refuse that is known before training: a model holding no transformers
    model, weights other than ternary (`bits` None: not quantized), activations other than 8-bit."""
    _hugging_face_model(model)
    if bits != 1.58:
        raise ValueError(
            f"a transformers export needs ternary weights (quant bits 1.58); this run has {bits}: transformers' "
            "BitNet layers are 1.58-bit only."
        )
    if act_bits != 8:
        raise ValueError(f"a transformers export needs 8-bit activations (quant act_bits 8); this run has {act_bits}.")


def save_transformers(model: nn.Module, directory: str | os.PathLike, tokenizer: Any = None) -> TransformersExport:
    """Write `model` (a transformers PreTrainedModel, or a module holding one, whose Linears TernaryQAT or
    `convert` quantized) to `directory` as a transformers BitNet checkpoint: config.json with its
    quantization_config, model.safetensors, and the tokenizer's files when one is given (module doc)."""
    hf_model = _hugging_face_model(model)
    layers = bit_linears(hf_model)
    refused = {name: why for name, layer in layers.items() if (why := _refusal(name, layer))}
    refused.update(_tied_refusals(hf_model, layers))
    if refused:
        name, why = next(iter(refused.items()))
        raise ValueError(f"save_transformers cannot write layer {name!r}: {why}. ({len(refused)} layer(s) refused.)")
    if not layers:
        raise ValueError(f"{type(hf_model).__name__} has no quantized layer: run TernaryQAT (or convert) first.")
    dtype = _model_dtype(hf_model)
    kept = [n for n, m in hf_model.named_modules() if isinstance(m, nn.Linear) and n not in layers]
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    save_file(_tensors(hf_model, layers, dtype), out / "model.safetensors", metadata={"format": "pt"})
    _write_config(hf_model, out, kept, dtype)
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    return TransformersExport(out, list(layers), kept)


def _write_config(model: nn.Module, out: Path, not_converted: list[str], dtype: torch.dtype) -> None:
    config = model.config.to_dict()
    config["quantization_config"] = {
        "quant_method": "bitnet",
        "linear_class": "bitlinear",
        "quantization_mode": "offline",
        "modules_to_not_convert": not_converted,
        "use_rms_norm": False,
    }
    config["dtype"] = str(dtype).removeprefix("torch.")
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
