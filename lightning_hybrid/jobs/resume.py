"""`resume=<run dir>`: continue a stopped run of the main job in its own directory, with its own config."""

from __future__ import annotations

import csv
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig, OmegaConf

CHECKPOINT = Path("csv") / "checkpoints" / "last.ckpt"  # where the default LastCheckpoint writes, in a run dir
SAVED_CONFIG = Path(".hydra") / "config.yaml"  # the run's composed config, as Hydra saved it


def register_resolvers() -> None:
    """The resolvers conf/train.yaml's hydra section reads: a resumed run writes into its own directory,
    and its Hydra files go beside the run's own instead of over them."""
    if not OmegaConf.has_resolver("lh_run_dir"):
        OmegaConf.register_new_resolver("lh_run_dir", lambda resume, fresh: str(resume) if resume else fresh)
        OmegaConf.register_new_resolver("lh_hydra_subdir", lambda resume: ".hydra-resumed" if resume else ".hydra")


def checkpoint_of(run_dir: str | Path) -> Path:
    """The run's last.ckpt, or a ValueError that says why there is none to resume from."""
    run_dir = Path(run_dir)
    if not (run_dir / SAVED_CONFIG).is_file():
        raise ValueError(f"resume={run_dir}: not a run directory of the main job (it has no {SAVED_CONFIG}).")
    summary = run_dir / "summary.json"
    if summary.is_file() and not json.loads(summary.read_text()).get("interrupted"):
        raise ValueError(
            f"resume={run_dir}: that run finished (its summary.json says so); there is nothing to resume. "
            f"To train on from its weights, start a new run with init_from={run_dir}."
        )
    checkpoint = run_dir / CHECKPOINT
    if not checkpoint.is_file():
        raise ValueError(
            f"resume={run_dir}: there is no {CHECKPOINT} in it (the run stopped before its first checkpoint, or "
            "ran with callbacks.checkpoint=null)."
        )
    return checkpoint


def resumed_config(cfg: DictConfig, overrides: Sequence[str]) -> DictConfig:
    """The run's own config, with `resume` set; an override that would change it is refused, by name."""
    run_dir = Path(cfg.resume)
    checkpoint_of(run_dir)
    saved = OmegaConf.load(run_dir / SAVED_CONFIG)
    conflicts = []
    for override in overrides:
        key = override.lstrip("+~").split("=", 1)[0]
        if key == "resume" or key.startswith("hydra."):
            continue
        ours, theirs = OmegaConf.select(cfg, key), OmegaConf.select(saved, key)
        if _plain(ours) != _plain(theirs):
            conflicts.append(f"{override} (the run has {key}={_plain(theirs)!r})")
    if conflicts:
        raise ValueError(
            f"resume={run_dir} continues the run with its own config; these overrides would change it: "
            + "; ".join(conflicts)
            + ". Drop them, or start a new run (init_from= starts one from a finished run's weights)."
        )
    saved.resume = str(run_dir)
    return saved


def _plain(value: Any) -> Any:
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def resumed_logger(output_dir: Path, checkpoint: Path | None) -> CSVLogger:
    """The run's CSVLogger. Resuming, the rows metrics.csv holds up to the checkpoint's step are kept
    (Lightning's CSV writer deletes the file it finds), and the rows after it, which the resumed run
    logs again, are dropped."""
    logger = CSVLogger(output_dir, name="csv", version="")
    metrics = Path(logger.log_dir) / "metrics.csv"
    if checkpoint is None or not metrics.is_file():
        return logger
    step = int(torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)["global_step"])
    with metrics.open(newline="") as file:
        reader = csv.DictReader(file)
        header, rows = list(reader.fieldnames or []), [r for r in reader if int(r["step"]) < step]
    with warnings.catch_warnings():  # "exists and is not empty": expected, the rows are put back below
        warnings.simplefilter("ignore")
        writer = logger.experiment
    with metrics.open("w", newline="") as file:
        out = csv.DictWriter(file, fieldnames=header)
        out.writeheader()
        out.writerows(rows)
    writer.metrics_keys = header
    return logger
