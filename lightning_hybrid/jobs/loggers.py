"""The `logger` group: the trackers a run logs to besides its own CSV record (conf/logger/)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from hydra.utils import instantiate
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig

# logger name: (the package it needs, the extra that installs it)
PACKAGES = {
    "tensorboard": ("tensorboard", "tensorboard"),
    "wandb": ("wandb", "wandb"),
    "mlflow": ("mlflow", "mlflow"),
}
RECORD = "csv"  # always written (jobs/resume.py): resume= and curves.png read it


def chosen(cfg: DictConfig) -> dict[str, Any]:
    """The logger group's entries by name, the CSV record's included (null entries dropped)."""
    return {name: node for name, node in (cfg.get("logger") or {}).items() if node is not None}


def check_loggers(cfg: DictConfig) -> None:
    """Each chosen tracker's package is installed: checked before training, the error names the extra."""
    for name in chosen(cfg):
        if name == RECORD:
            continue
        if name not in PACKAGES:
            raise ValueError(f"logger={name}: no such logger (the options: {RECORD}, {', '.join(PACKAGES)}).")
        package, extra = PACKAGES[name]
        if importlib.util.find_spec(package) is None:
            raise ModuleNotFoundError(
                f"logger={name} needs the {package} package: pip install 'lightning_hybrid[{extra}]'."
            )


def _where(name: str, node: Any, output_dir: Path) -> dict[str, str]:
    if name != "mlflow":
        return {"save_dir": str(output_dir)}
    # MLflow 3 refuses its file store by default; an sqlite file is its local store
    return {} if node.get("tracking_uri") else {"tracking_uri": f"sqlite:///{output_dir.resolve() / 'mlflow.db'}"}


def trackers(cfg: DictConfig, output_dir: Path) -> list[Logger]:
    """The chosen trackers, each writing under the run directory unless its config says where."""
    made = []
    for name, node in chosen(cfg).items():
        if name == RECORD:
            continue
        made.append(instantiate(node, **_where(name, node, output_dir)))
    return made
