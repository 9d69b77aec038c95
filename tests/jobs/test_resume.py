"""Runs that survive: Ctrl-C and SIGTERM leave a checkpoint, `resume=<run dir>` continues the run exactly,
and the mistakes around resuming are refused by name before anything trains."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from safetensors.torch import load_file

from lightning_hybrid.jobs.configs import config_dir
from lightning_hybrid.jobs.resume import CHECKPOINT, SAVED_CONFIG, checkpoint_of, resumed_config
from lightning_hybrid.jobs.train import refuse_unknown_keys

REPO = Path(__file__).resolve().parents[2]
# The hybrid callbacks, TernaryQAT's warm-up and validation inside the run; digits in 60 steps
# of 32 (each epoch 42 batches): the resume is mid-epoch and crosses an epoch boundary.
STEPS = [
    "trainer.max_steps=60",
    "trainer.val_check_interval=25",
    "callbacks.checkpoint.every_n_steps=20",
    "callbacks=hybrid",
    "quant.warmup_steps=30",
    "callbacks.progress_bar=null",
]
RUN = ["experiment=digits", *STEPS]


def _run(run_dir: Path | None, *overrides: str) -> subprocess.CompletedProcess:
    where = [f"hydra.run.dir={run_dir}"] if run_dir is not None else []
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests")}  # the signal-sending callback lives in the tests
    cmd = [sys.executable, "-m", "lightning_hybrid.train", *where, *overrides]
    return subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def _signal_at(step: int, signum: str = "SIGINT") -> list[str]:
    return [
        "+callbacks.stop._target_=helpers.stopper.SignalAt",
        f"+callbacks.stop.step={step}",
        f"+callbacks.stop.signum={signum}",
    ]


def _lrs(run_dir: Path) -> list[str]:
    with (run_dir / "csv" / "metrics.csv").open() as file:
        return [row["lr-AdamW/pg1"] for row in csv.DictReader(file) if row["lr-AdamW/pg1"]]


# A char-level GPT on k-means-clustered windows of a small text (the first 12 kB of this repository's README).
CLUSTERED = [
    "experiment=smoke",
    "data=clustered_char",
    f"data.path={REPO / 'README.md'}",
    "data.max_bytes=12000",
    "data.kmeans_iters=20",
    "data.cache=false",
    *STEPS,
]


@pytest.mark.parametrize("run", [RUN, pytest.param(CLUSTERED, marks=pytest.mark.slow)], ids=["digits", "clustered"])
def test_ctrl_c_leaves_a_checkpoint_and_the_resumed_run_ends_as_the_uninterrupted_one(tmp_path, run):
    full = _run(tmp_path / "full", *run)
    assert full.returncode == 0, full.stderr[-3000:]
    cut = _run(tmp_path / "cut", *run, *_signal_at(37))  # in the middle of step 37, as a person would
    assert cut.returncode == 130, cut.stderr[-3000:]
    summary = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert summary["interrupted"] and summary["stopped_by"] == "Ctrl-C" and summary["steps"] == 38
    assert f"resume={tmp_path / 'cut'}" in summary["resume"] and "resume with" in cut.stdout + cut.stderr
    assert not (tmp_path / "cut" / "model.safetensors").exists()  # nothing exported from a stopped run
    state = torch.load(tmp_path / "cut" / CHECKPOINT, weights_only=True)  # loadable, and by the safe loader
    assert state["global_step"] == 38

    resumed = _run(None, f"resume={tmp_path / 'cut'}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # oracle: the uninterrupted run, exactly (weights, the LR of every logged step, the final val loss)
    ours, theirs = load_file(tmp_path / "cut" / "model.safetensors"), load_file(tmp_path / "full" / "model.safetensors")
    for key in theirs:
        torch.testing.assert_close(ours[key], theirs[key], rtol=0, atol=0, msg=key)
    assert _lrs(tmp_path / "cut") == _lrs(tmp_path / "full")
    finals = [json.loads((tmp_path / r / "summary.json").read_text())["val_loss"] for r in ("cut", "full")]
    assert finals[0] == finals[1]
    assert "+callbacks.stop.step=37" in (tmp_path / "cut" / ".hydra" / "overrides.yaml").read_text()  # kept


def test_sigterm_stops_after_the_step_with_a_checkpoint(tmp_path):
    cut = _run(tmp_path / "cut", *RUN, *_signal_at(20, "SIGTERM"))
    assert cut.returncode == 143, cut.stderr[-3000:]
    summary = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert summary["stopped_by"] == "SIGTERM" and summary["steps"] == 21
    assert torch.load(tmp_path / "cut" / CHECKPOINT, weights_only=True)["global_step"] == 21


def test_an_unknown_added_key_is_refused_by_name():
    with pytest.raises(
        ValueError, match=r"\+ckpt_path=x.ckpt: the main job has no setting `ckpt_path`.*resume=<run dir>"
    ):
        refuse_unknown_keys(["+ckpt_path=x.ckpt"])
    refuse_unknown_keys(["+callbacks.extra._target_=a.B", "+trainer.detect_anomaly=true", "quant=binary"])


def _compose(*overrides):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def _fake_run(run_dir: Path, *overrides: str, checkpoint: bool = True, finished: bool = False) -> Path:
    (run_dir / SAVED_CONFIG).parent.mkdir(parents=True)
    OmegaConf.save(_compose(*overrides), run_dir / SAVED_CONFIG)
    if checkpoint:
        (run_dir / CHECKPOINT).parent.mkdir(parents=True)
        (run_dir / CHECKPOINT).write_bytes(b"")
    if finished:
        (run_dir / "summary.json").write_text(json.dumps({"steps": 10}))
    return run_dir


def test_resuming_refuses_overrides_that_would_change_the_run(tmp_path):
    run = _fake_run(tmp_path / "run", "quant=ternary", "trainer.max_steps=50")
    same = resumed_config(_compose(f"resume={run}", "trainer.max_steps=50"), [f"resume={run}", "trainer.max_steps=50"])
    assert same.trainer.max_steps == 50 and same.resume == str(run)
    bare = resumed_config(_compose(f"resume={run}"), [f"resume={run}"])  # the run's own config, not the defaults
    assert bare.trainer.max_steps == 50
    overrides = [f"resume={run}", "quant=binary", "seed=3"]
    with pytest.raises(ValueError, match=r"quant=binary \(the run has quant=.*seed=3 \(the run has seed=1337\)"):
        resumed_config(_compose(*overrides), overrides)


@pytest.mark.parametrize(
    ("setup", "match"),
    [
        ({"checkpoint": False}, "there is no csv/checkpoints/last.ckpt in it"),
        ({"finished": True}, "that run finished .* init_from="),
    ],
)
def test_there_must_be_a_stopped_run_to_resume(tmp_path, setup, match):
    with pytest.raises(ValueError, match=match):
        checkpoint_of(_fake_run(tmp_path / "run", **setup))
    with pytest.raises(ValueError, match="not a run directory of the main job"):
        checkpoint_of(tmp_path)
