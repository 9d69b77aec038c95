"""Packed export: quantized weights at 1.6-2 bits a weight on disk, in a safetensors file.

File format, version 1 and 2 (safetensors; all metadata values are strings):
  tensors   "<layer>.weight_packed" (uint8, see quant/pack.py) and "<layer>.weight_scale" (fp32: [1] for
            1 and 1.58 bits, [out_features] for 2, 4 and 8) for every quantized layer; every other state_dict
            entry under its own key, at its own dtype or the `float_dtype` asked for;
            a tensor shared by several keys (tied weights) is stored once.
  metadata  format="lightning_hybrid.packed", format_version="1",
            layers   = JSON {layer: {bits, layout, shape, act_bits, dtype}},
            aliases  = JSON {key: key it shares storage with},
            state    = JSON {state_dict key: shape} of the model that was saved (its fingerprint),
            sha256   = digest of every stored tensor's bytes, in sorted key order.
Version 2 adds the 2/4/8-bit layers of mixed-precision plans ("4bit" and "int8" layouts, per-row
scales); a file without such layers is written as version 1, so older readers still load it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from lightning_hybrid.quant import formats
from lightning_hybrid.quant import reference as ref
from lightning_hybrid.quant.convert import replace_submodule
from lightning_hybrid.quant.inference import PackedBitLinear
from lightning_hybrid.quant.linear import bit_linears
from lightning_hybrid.quant.pack import CorruptPackError
from lightning_hybrid.utils.checks import choice

FORMAT = "lightning_hybrid.packed"
FORMAT_VERSION = "2"  # the newest; a file is written at the oldest version that has all its widths
READABLE_VERSIONS = ("1", FORMAT_VERSION)


class PackedFileError(ValueError):
    """A packed file that cannot be loaded into the given model."""


@dataclass
class LayerBytes:
    name: str
    numel: int
    bits: float
    layout: str
    packed_bytes: int  # the codes
    scale_bytes: int = 4  # fp32 scales: one per layer (1, 1.58 bits) or one per output row (2, 4, 8)

    @property
    def bits_per_weight(self) -> float:
        """Code bits a weight (the nominal width, plus row padding)."""
        return 8 * self.packed_bytes / self.numel

    @property
    def bits_per_weight_with_scales(self) -> float:
        return 8 * (self.packed_bytes + self.scale_bytes) / self.numel


@dataclass
class PackReport:
    """Sizes of one export: per quantized layer, the file, and the fp32 / bf16 state dicts."""

    path: str
    file_bytes: int
    fp32_bytes: int
    bf16_bytes: int
    layers: list[LayerBytes] = field(default_factory=list)

    @property
    def compression_vs_fp32(self) -> float:
        return self.fp32_bytes / self.file_bytes

    @property
    def compression_vs_bf16(self) -> float:
        return self.bf16_bytes / self.file_bytes

    @property
    def quantized_bits_per_weight(self) -> float:
        numel = sum(layer.numel for layer in self.layers)
        return 8 * sum(layer.packed_bytes for layer in self.layers) / max(numel, 1)

    @property
    def quantized_bits_per_weight_with_scales(self) -> float:
        numel = sum(layer.numel for layer in self.layers)
        return 8 * sum(layer.packed_bytes + layer.scale_bytes for layer in self.layers) / max(numel, 1)

    def table(self) -> str:
        rows = [
            "| layer | weights | bits | layout | code bytes | scale bytes | bits/weight | with scales |",
            "|---|---|---|---|---|---|---|---|",
        ]
        rows += [
            f"| {la.name} | {la.numel} | {la.bits} | {la.layout} | {la.packed_bytes} | {la.scale_bytes} | "
            f"{la.bits_per_weight:.3f} | {la.bits_per_weight_with_scales:.3f} |"
            for la in self.layers
        ]
        return "\n".join(rows) + "\n\n" + self.summary()

    def summary(self) -> str:
        return (
            f"file {self.file_bytes} bytes; fp32 state dict {self.fp32_bytes} bytes "
            f"({self.compression_vs_fp32:.2f}x), bf16 {self.bf16_bytes} bytes ({self.compression_vs_bf16:.2f}x); "
            f"quantized weights {self.quantized_bits_per_weight:.3f} bits each "
            f"({self.quantized_bits_per_weight_with_scales:.3f} with their scales)"
        )


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for key in sorted(tensors):
        h.update(key.encode())
        h.update(tensors[key].contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def state_sizes(state: dict[str, torch.Tensor]) -> tuple[int, int]:
    """Bytes of a state dict with its floating tensors at fp32 and at bf16 (shared storage counted once)."""
    seen, fp32, bf16 = set(), 0, 0
    for t in state.values():
        if t.untyped_storage().data_ptr() in seen:
            continue
        seen.add(t.untyped_storage().data_ptr())
        fp32 += t.numel() * (4 if t.is_floating_point() else t.element_size())
        bf16 += t.numel() * (2 if t.is_floating_point() else t.element_size())
    return fp32, bf16


def _pack_layers(model: nn.Module, layout: str) -> tuple[dict, dict, list[LayerBytes]]:
    tensors, layers, sizes = {}, {}, []
    for name, layer in bit_linears(model).items():
        if layer.quant_lambda < 1.0:
            raise ValueError(
                f"Layer {name!r} is in quantization warm-up (quant_lambda={layer.quant_lambda}); the packed "
                "export holds fully quantized weights. Finish the warm-up (warmup_steps) before exporting."
            )
        codes, scale = ref.weight_codes(layer.weight, layer.bits)
        lay = formats.layout_for(layer.bits, layout)
        packed = formats.pack(codes.cpu(), lay)
        tensors[f"{name}.weight_packed"] = packed
        tensors[f"{name}.weight_scale"] = scale.reshape(-1).cpu()
        layers[name] = {
            "bits": layer.bits,
            "layout": lay,
            "shape": list(layer.weight.shape),
            "act_bits": layer.act_bits,
            "dtype": _dtype_name(layer.weight.dtype),
        }
        sizes.append(LayerBytes(name, layer.weight.numel(), layer.bits, lay, packed.numel(), 4 * scale.numel()))
    return tensors, layers, sizes


FLOAT_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def _float_dtype(value: torch.dtype | str | None, name: str = "float_dtype") -> torch.dtype | None:
    if value is None or value in FLOAT_DTYPES.values():
        return value
    return FLOAT_DTYPES[choice(name, value, (None, *FLOAT_DTYPES, *FLOAT_DTYPES.values()))]


def _unquantized_tensors(
    state: dict[str, torch.Tensor], quantized: set[str], dtype: torch.dtype | None
) -> tuple[dict, dict]:
    tensors, aliases, owner = {}, {}, {}
    for key, t in state.items():
        if key in quantized:
            continue
        ptr = (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape))
        if ptr in owner:
            aliases[key] = owner[ptr]
            continue
        owner[ptr] = key
        cast = dtype if dtype is not None and t.is_floating_point() else t.dtype
        tensors[key] = t.detach().cpu().to(cast).contiguous().clone()
    return tensors, aliases


def round_like_export(model: nn.Module, float_dtype: torch.dtype | str | None) -> None:
    """Round, in place, the floating tensors that `save_packed(model, ..., float_dtype=...)` stores at
    `float_dtype` through that dtype, so that the model computes what `load_packed` gives back.

    Quantized (BitLinear) weights are left alone: the export stores their codes and scales, computed
    from the full-precision values. None leaves the model as it is."""
    dtype = _float_dtype(float_dtype)
    if dtype is None:
        return
    quantized = {f"{name}.weight" for name in bit_linears(model)}
    with torch.no_grad():
        for key, t in model.state_dict().items():
            if key not in quantized and t.is_floating_point():
                t.copy_(t.to(dtype))


def check_export_settings(
    layout: str, float_dtype: torch.dtype | str | None, names: tuple[str, str] = ("layout", "float_dtype")
) -> None:
    """The checks save_packed makes on its settings, for a caller that wants them before a long run;
    the errors name the settings as `names` (the caller's own)."""
    choice(names[0], layout, formats.TERNARY_LAYOUTS)
    _float_dtype(float_dtype, names[1])


def save_packed(
    model: nn.Module, path: str | os.PathLike, layout: str = "2bit", float_dtype: torch.dtype | str | None = None
) -> PackReport:
    """Write `model` with every BitLinear weight packed; return the size report.

    layout: "2bit" (4 weights a byte, row-aligned for kernels) or "base3" (5 weights a byte, 1.6 bits).
    Binary (bits=1) layers are always stored at 1 bit a weight.
    float_dtype: the dtype of the floating tensors that are not quantized (embeddings, norms, biases,
    heads): None keeps each tensor's own, "bf16" or "fp16" halves them (load_packed casts them back to
    the model's dtypes). Worth it when an embedding table is most of the model.
    """
    choice("layout", layout, formats.TERNARY_LAYOUTS)
    dtype = _float_dtype(float_dtype)
    tensors, layers, sizes = _pack_layers(model, layout)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no BitLinear layer: convert it (TernaryQAT) before save_packed.")
    state = model.state_dict()
    rest, aliases = _unquantized_tensors(state, {f"{n}.weight" for n in layers}, dtype)
    tensors.update(rest)
    version = str(max(formats.width(spec["bits"]).format_version for spec in layers.values()))
    metadata = {
        "format": FORMAT,
        "format_version": version,
        "layers": json.dumps(layers),
        "aliases": json.dumps(aliases),
        "state": json.dumps({k: list(v.shape) for k, v in state.items()}),
        "sha256": _digest(tensors),
    }
    save_file(tensors, os.fspath(path), metadata=metadata)
    fp32, bf16 = state_sizes(state)
    return PackReport(os.fspath(path), os.path.getsize(path), fp32, bf16, sizes)


def _read(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        with safe_open(os.fspath(path), framework="pt") as f:
            metadata = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open is not iterable)
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise PackedFileError(
            f"{os.fspath(path)!r} is not a readable packed file (truncated or corrupt?): {err}"
        ) from err
    return tensors, metadata


def _check_header(metadata: dict[str, str], path) -> None:
    if metadata.get("format") != FORMAT:
        raise PackedFileError(
            f"{os.fspath(path)!r} is not a lightning_hybrid packed file (format={metadata.get('format')!r})."
        )
    version = metadata.get("format_version")
    if version not in READABLE_VERSIONS:
        raise PackedFileError(
            f"{os.fspath(path)!r} has packed format version {version!r}; this lightning_hybrid reads versions "
            f"{', '.join(READABLE_VERSIONS)}. Load it with the lightning_hybrid release that wrote it."
        )


def _check_model(model: nn.Module, saved: dict[str, list[int]], path) -> None:
    current = {k: list(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(current) - set(saved))
    unexpected = sorted(set(saved) - set(current))
    reshaped = sorted(k for k in set(current) & set(saved) if current[k] != saved[k])
    if missing or unexpected or reshaped:
        raise PackedFileError(
            f"{os.fspath(path)!r} was saved from another model: keys missing from the file {missing[:5]}, "
            f"keys the model lacks {unexpected[:5]}, shapes that differ {reshaped[:5]}."
        )


def _weight_dtype(name: str, path) -> torch.dtype:
    dtype = getattr(torch, str(name), None)
    if not isinstance(dtype, torch.dtype):
        raise PackedFileError(f"{os.fspath(path)!r} is corrupt: unknown weight dtype {name!r}.")
    return dtype


def _install_layer(model: nn.Module, name: str, spec: dict, tensors: dict, path) -> None:
    old = model.get_submodule(name)
    if not isinstance(old, nn.Linear):
        raise PackedFileError(f"{os.fspath(path)!r} was saved from another model: {name!r} is not an nn.Linear here.")
    new = PackedBitLinear(
        spec["shape"][1],
        spec["shape"][0],
        bits=spec["bits"],
        layout=spec["layout"],
        act_bits=spec["act_bits"],
        bias=tensors.get(f"{name}.bias"),
        weight_dtype=_weight_dtype(spec["dtype"], path),
    ).to(old.weight.device)
    new.weight_packed.copy_(tensors[f"{name}.weight_packed"])
    new.weight_scale.copy_(tensors[f"{name}.weight_scale"])
    replace_submodule(model, name, new)


def load_packed(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Fill `model` (the architecture that was saved, converted or not) from a packed file and return it.

    Quantized layers become PackedBitLinear inference layers; every other tensor is loaded as saved
    (cast to the model's dtype by load_state_dict).
    Raises PackedFileError for an unreadable, truncated or corrupt file, an unknown format version, or a
    file saved from a model with other keys or shapes.
    """
    tensors, metadata = _read(path)
    _check_header(metadata, path)
    if _digest(tensors) != metadata.get("sha256"):
        raise PackedFileError(f"{os.fspath(path)!r} is corrupt: its tensors do not match the stored sha256 checksum.")
    layers, aliases = json.loads(metadata["layers"]), json.loads(metadata["aliases"])
    _check_model(model, json.loads(metadata["state"]), path)
    for name, spec in layers.items():
        try:
            formats.unpack(tensors[f"{name}.weight_packed"], spec["layout"], tuple(spec["shape"]))
        except (CorruptPackError, RuntimeError) as err:
            raise PackedFileError(f"{os.fspath(path)!r} is corrupt: layer {name!r}: {err}") from err
        _install_layer(model, name, spec, tensors, path)
    state = {k: v for k, v in tensors.items()}
    state.update({k: tensors[src] for k, src in aliases.items()})
    model.load_state_dict(state, strict=True)
    return model
