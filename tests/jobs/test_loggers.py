"""The main job's logger group: each tracker's output read back with its own reader (TensorBoard's event
accumulator, MLflow's client on the run's sqlite store, W&B's protobuf records of the offline run file),
offline; and the errors before training."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from helpers.wandb_log import history_keys
from lightning_hybrid.jobs.configs import config_dir
from lightning_hybrid.jobs.loggers import check_loggers

REPO = Path(__file__).resolve().parents[2]
# what every tracker must hold: the losses, the LR, TernaryQAT's λ and error, the hybrid's multiplier and trust region
METRICS = {
    "train_loss",
    "val_loss",
    "lr-AdamW/pg1",
    "quant/lambda",
    "quant_error/mean",
    "auxlr/multiplier",
    "trust/active_rate",
}


def _compose(*overrides):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("train", overrides=list(overrides))


@pytest.mark.slow  # one smoke run writing to all four
def test_every_tracker_holds_the_runs_metrics(tmp_path):
    for package in ("tensorboard", "mlflow", "wandb"):
        pytest.importorskip(package)
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "lightning_hybrid.train", f"hydra.run.dir={run}", "experiment=smoke"]
    cmd += ["logger=[csv,tensorboard,mlflow,wandb]", "callbacks=hybrid", "callbacks.progress_bar=null"]
    env = {**os.environ, "WANDB_SILENT": "true", "WANDB_MODE": "offline"}
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "train_loss" in (run / "csv" / "metrics.csv").read_text()  # the run's own record stays

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    assert set(events.Tags()["scalars"]) >= METRICS

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{run / 'mlflow.db'}")
    (mlflow_run,) = client.search_runs([client.get_experiment_by_name("lightning_hybrid").experiment_id])
    assert set(mlflow_run.data.metrics) >= METRICS
    assert len(client.get_metric_history(mlflow_run.info.run_id, "train_loss")) == 4  # steps 4, 9, 14, 19

    (wandb_file,) = (run / "wandb").glob("offline-run-*/run-*.wandb")
    assert history_keys(wandb_file) >= METRICS


def test_an_unknown_logger_and_a_missing_package_are_named_before_training(monkeypatch):
    import importlib.util

    check_loggers(_compose())  # csv only: nothing to check
    with pytest.raises(
        ValueError, match=r"logger=comet: no such logger \(the options: csv, tensorboard, wandb, mlflow\)"
    ):
        check_loggers(_compose("+logger.comet={}"))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "mlflow" else real(name, *a))
    with pytest.raises(
        ModuleNotFoundError, match=r"logger=mlflow needs the mlflow package: .*lightning_hybrid\[mlflow\]"
    ):
        check_loggers(_compose("logger=[csv,mlflow]"))


def test_several_loggers_compose_into_one_group():
    assert set(_compose("logger=[csv,tensorboard,wandb]").logger) == {"csv", "tensorboard", "wandb"}
    assert _compose("logger=wandb").logger.wandb.offline is True  # offline unless asked


def test_a_resumed_run_continues_its_own_tracker_runs(tmp_path):
    from omegaconf import OmegaConf

    from lightning_hybrid.jobs.loggers import _where

    wandb = OmegaConf.create({"offline": True})
    first, again = _where("wandb", wandb, tmp_path / "a", False), _where("wandb", wandb, tmp_path / "a", True)
    assert first["id"] == again["id"] != _where("wandb", wandb, tmp_path / "b", False)["id"]
    assert first["resume"] == "allow"  # the same W&B run id for the directory: resuming appends to it

    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    node = OmegaConf.create({"experiment_name": "lightning_hybrid", "tracking_uri": None})
    uri = _where("mlflow", node, run_dir, False)["tracking_uri"]
    assert "run_id" not in _where("mlflow", node, run_dir, True)  # no store yet: a new run
    client = MlflowClient(tracking_uri=uri)
    run_id = client.create_run(client.create_experiment("lightning_hybrid")).info.run_id
    assert _where("mlflow", node, run_dir, True)["run_id"] == run_id
    assert "run_id" not in _where("mlflow", node, run_dir, False)
