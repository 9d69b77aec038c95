"""The `logger` group: the trackers a run logs to besides its own CSV record (conf/logger/)."""

from __future__ import annotations

import hashlib
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


def _where(name: str, node: Any, output_dir: Path, resuming: bool) -> dict[str, Any]:
    """Where each tracker writes, and which of its runs a resumed run continues."""
    if name == "wandb":  # one W&B run id per run directory: a resumed run continues it (wandb sync merges)
        digest = hashlib.sha256(str(output_dir.resolve()).encode()).hexdigest()[:12]
        return {"save_dir": str(output_dir), "id": node.get("id") or f"lh{digest}", "resume": "allow"}
    if name != "mlflow":
        return {"save_dir": str(output_dir)}
    if node.get("tracking_uri"):  # a store of the user's own
        return {}
    # MLflow 3 refuses its file store by default; an sqlite file is its local store
    where = {"tracking_uri": f"sqlite:///{output_dir.resolve() / 'mlflow.db'}"}
    if resuming and (output_dir / "mlflow.db").is_file():
        where["run_id"] = mlflow_run_of(where["tracking_uri"], node.get("experiment_name", "lightning_hybrid"))
    return where


def mlflow_run_of(uri: str, experiment: str) -> str | None:
    """The one MLflow run a run directory's own store holds (None if there is none)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    runs = client.search_runs([found.experiment_id], max_results=2) if found else []
    return runs[0].info.run_id if len(runs) == 1 else None


def trackers(cfg: DictConfig, output_dir: Path, resuming: bool = False) -> list[Logger]:
    """The chosen trackers, each writing under the run directory unless its config says where; resuming,
    each continues its own run of this directory (TensorBoard appends to its event directory)."""
    made = []
    for name, node in chosen(cfg).items():
        if name == RECORD:
            continue
        made.append(instantiate(node, **_where(name, node, output_dir, resuming)))
    return made
