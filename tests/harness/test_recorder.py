"""RunRecorder (harness/recorder.py): the per-run callback of the benchmark harness."""

from types import SimpleNamespace

import pytest
import torch

from lightning_hybrid.harness.recorder import NonFiniteLossError, RunRecorder


def test_recorder_stops_a_run_on_a_non_finite_loss():
    recorder = RunRecorder(log_every=1)
    recorder.on_train_batch_start()
    with pytest.raises(NonFiniteLossError, match=r"non-finite training loss \(nan\) at step 7"):
        recorder.on_train_batch_end(SimpleNamespace(global_step=7), None, {"loss": torch.tensor(float("nan"))}, None, 0)


def test_the_logging_interval_is_checked():
    with pytest.raises(ValueError, match="`log_every` must be a positive integer, got 0"):
        RunRecorder(log_every=0)
