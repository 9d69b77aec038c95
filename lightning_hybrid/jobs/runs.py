"""Main-job runs as teachers and starting points: their saved weights and the model config they used."""

from __future__ import annotations

import os
from pathlib import Path

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from safetensors.torch import load_model
from torch import nn

from lightning_hybrid.models.gpt import EARLIER_MODEL

WEIGHTS = "model.safetensors"  # the full-precision (latent) weights every main-job run writes


def weights_of(run: str | os.PathLike, argument: str) -> Path:
    path = Path(run) / WEIGHTS
    if not path.is_file():
        stopped = (Path(run) / "csv" / "checkpoints" / "last.ckpt").is_file()
        hint = f" That run was stopped before its end: continue it with resume={os.fspath(run)}." if stopped else ""
        raise FileNotFoundError(
            f"`{argument}`={os.fspath(run)!r} has no {WEIGHTS}: give the directory of a finished run.{hint}"
        )
    return path


def load_run_weights(model: nn.Module, run: str | os.PathLike, argument: str) -> nn.Module:
    """Load a run's weights into `model` (the same architecture), naming the argument on a mismatch."""
    path = weights_of(run, argument)
    try:
        load_model(model, path)
    except RuntimeError as err:
        raise ValueError(f"`{argument}`={os.fspath(run)!r}: its weights do not fit this model ({err}).") from None
    return model


def teacher_from_run(run: str | os.PathLike, vocab_size: int) -> nn.Module:
    """The model of a finished run, rebuilt from its .hydra/config.yaml, with its weights."""
    config = Path(run) / ".hydra" / "config.yaml"
    if not config.is_file():
        raise FileNotFoundError(
            f"`distill.teacher_run`={os.fspath(run)!r} has no .hydra/config.yaml: give a main-job run directory."
        )
    cfg: DictConfig = OmegaConf.load(config)
    return load_run_weights(instantiate(saved_model_config(cfg), vocab_size=vocab_size), run, "distill.teacher_run")


def saved_model_config(cfg: DictConfig) -> DictConfig:
    """A run's model config, with the earlier model's fixed choices filled in where a LanguageModel's
    config predates them (so that its weights still load)."""
    if str(cfg.model.get("_target_", "")).endswith(".LanguageModel"):
        with open_dict(cfg):  # in place, so that its interpolations (${data.block_size}) still resolve
            for key, value in EARLIER_MODEL.items():
                cfg.model.setdefault(key, value)
    return cfg.model
