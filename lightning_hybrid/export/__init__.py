"""Exports of a quantized model: the packed file (`packed`, loaded back with `load_packed`), a Hugging
Face transformers BitNet checkpoint (`transformers`) and a GGUF file for llama.cpp (`gguf`; its numerics
emulated by `llama_cpp`). `lightning_hybrid.export.save_packed` and the other
names of the former single module stay importable from here."""

from lightning_hybrid.export.gguf_llama import GGUFExport, check_gguf_settings, save_gguf
from lightning_hybrid.export.packed import (
    FLOAT_DTYPES,
    FORMAT,
    FORMAT_VERSION,
    READABLE_VERSIONS,
    LayerBytes,
    PackedFileError,
    PackReport,
    check_export_settings,
    load_packed,
    round_like_export,
    save_packed,
    state_sizes,
)
from lightning_hybrid.export.transformers_bitnet import (
    TransformersExport,
    check_transformers_settings,
    save_transformers,
)

__all__ = [
    "FLOAT_DTYPES",
    "FORMAT",
    "FORMAT_VERSION",
    "GGUFExport",
    "READABLE_VERSIONS",
    "LayerBytes",
    "PackReport",
    "PackedFileError",
    "TransformersExport",
    "check_export_settings",
    "check_gguf_settings",
    "check_transformers_settings",
    "load_packed",
    "round_like_export",
    "save_gguf",
    "save_packed",
    "save_transformers",
    "state_sizes",
]
