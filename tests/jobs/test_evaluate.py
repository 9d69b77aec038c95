"""A finished run's packed model on a text (jobs/evaluate.py). Oracle: on the run's own text and windows,
its final val loss from summary.json (the QAT model's, which the packed model equals bit for bit on a
CPU); tolerance 1e-4, the 4 decimals the summary keeps."""

import json
import math

import pytest

from helpers.runs import smoke_run
from lightning_hybrid.jobs.evaluate import evaluate


@pytest.mark.slow  # a 20-step smoke run
def test_on_the_training_text_it_gives_the_runs_val_loss_and_other_text_works_too(tmp_path):
    from omegaconf import OmegaConf

    run = smoke_run(tmp_path / "run")
    result = evaluate(OmegaConf.create({"run": str(run), "data": {"path": None}}))
    assert abs(result["val_loss"] - json.loads((run / "summary.json").read_text())["val_loss"]) <= 1e-4
    assert result["bits_per_byte"] == pytest.approx(result["val_loss"] / math.log(2), abs=1e-3)
    other = tmp_path / "other.txt"
    other.write_text("the quick brown fox jumps over the lazy dog. " * 500)
    result = evaluate(OmegaConf.create({"run": str(run), "data": {"path": str(other)}}))
    assert result["text"] == str(other) and 0 < result["val_loss"] < 10
