"""Where the Hydra configs are, and the callbacks a config names."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
from hydra.utils import instantiate
from omegaconf import DictConfig

PACKAGE = Path(__file__).resolve().parent.parent


def config_dir() -> str:
    """conf/ as shipped inside the wheel, else the source checkout's top-level conf/."""
    packaged = PACKAGE / "conf"
    return str(packaged if packaged.is_dir() else PACKAGE.parent / "conf")


def build_callbacks(cfg: DictConfig) -> list[pl.Callback]:
    """The `callbacks` group's entries (a null entry is dropped), then the quant and compression groups
    when their chosen option is a callback."""
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    for group in ("quant", "compression"):
        node = cfg.get(group) or {}
        if node.get("_target_"):
            callbacks.append(instantiate(node))
    return callbacks
