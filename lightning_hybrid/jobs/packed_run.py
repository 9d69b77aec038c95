"""A finished main-job run as a deployable model: its packed export loaded into its own architecture
(PackedBitLinear layers), its config, and the tokenizer of its data. What `generate` and `evaluate` read."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from lightning_hybrid.data.corpora import read_bytes
from lightning_hybrid.data.text import encode
from lightning_hybrid.export import load_packed
from lightning_hybrid.jobs.runs import saved_model_config

PACKED = "model.packed.safetensors"


@dataclass(frozen=True)
class Tokenizer:
    """The run's tokenizer: bytes (vocab 256), or the training text's sorted alphabet."""

    kind: str
    alphabet: tuple[str, ...] = ()

    @property
    def vocab_size(self) -> int:
        return 256 if self.kind == "byte" else len(self.alphabet)

    def encode(self, text: str) -> list[int]:
        if self.kind == "byte":
            return list(text.encode("utf-8"))
        index = {c: i for i, c in enumerate(self.alphabet)}
        unknown = sorted({c for c in text if c not in index})
        if unknown:
            raise ValueError(f"`prompt` has characters the run's alphabet lacks: {''.join(unknown)!r}.")
        return [index[c] for c in text]

    def decode(self, ids: list[int]) -> str:
        if self.kind == "byte":
            return bytes(ids).decode("utf-8", errors="replace")
        return "".join(self.alphabet[i] for i in ids)


def finished_run(run: str | os.PathLike) -> tuple[Path, DictConfig]:
    """The run directory and its config, if it is a finished main-job run with a packed export."""
    path = Path(run)
    config, summary = path / ".hydra" / "config.yaml", path / "summary.json"
    if not config.is_file():
        raise FileNotFoundError(f"`run`={os.fspath(run)!r} is not a main-job run directory (no .hydra/config.yaml).")
    if not summary.is_file() or json.loads(summary.read_text()).get("interrupted"):
        raise ValueError(
            f"`run`={os.fspath(run)!r} has not finished: continue it with "
            f"python -m lightning_hybrid.train resume={os.fspath(run)}."
        )
    if not (path / PACKED).is_file():
        raise FileNotFoundError(
            f"`run`={os.fspath(run)!r} has no {PACKED}: only quantized runs with the packed export "
            "(export_formats containing packed) have a packed model."
        )
    return path, OmegaConf.load(config)


def tokenizer_of(data: DictConfig) -> Tokenizer:
    """The tokenizer the run's data config gives (a char run reads its text again for the alphabet)."""
    kind = data.get("tokenizer", "byte")
    if kind == "byte":
        return Tokenizer("byte")
    raw = read_bytes(data.get("path"), data.get("max_bytes"), encoding=data.get("encoding", "utf-8"))
    return Tokenizer("char", tuple(encode(raw, "char")[2]))


def packed_model(run: str | os.PathLike) -> tuple[nn.Module, DictConfig, Tokenizer]:
    """The run's packed model in eval mode, its config and its tokenizer."""
    path, cfg = finished_run(run)
    if "tokenizer" not in cfg.data:
        raise ValueError(f"`run`={os.fspath(run)!r} is not a language-model run (its data has no tokenizer).")
    tokenizer = tokenizer_of(cfg.data)
    model = instantiate(saved_model_config(cfg), vocab_size=tokenizer.vocab_size)
    load_packed(model, path / PACKED)
    return model.eval(), cfg, tokenizer


@torch.no_grad()
def next_token_logits(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """The model's logits for the token after `ids` (1, T)."""
    return model(ids)[:, -1, :].float()
