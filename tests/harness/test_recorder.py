"""RunRecorder (harness/recorder.py): the per-run callback of the benchmark harness."""

from types import SimpleNamespace

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import DataLoader, TensorDataset

from lightning_hybrid.harness.recorder import NonFiniteLossError, RunRecorder


def test_recorder_stops_a_run_on_a_non_finite_loss():
    recorder = RunRecorder(log_every=1)
    recorder.on_train_batch_start()
    with pytest.raises(NonFiniteLossError, match=r"non-finite training loss \(nan\) at step 7"):
        recorder.on_train_batch_end(SimpleNamespace(global_step=7), None, {"loss": torch.tensor(float("nan"))}, None, 0)


def test_the_logging_interval_is_checked():
    with pytest.raises(ValueError, match="`log_every` must be a positive integer, got 0"):
        RunRecorder(log_every=0)


class _Holds(pl.Callback):
    def __init__(self, shared: torch.Tensor, other: "pl.Callback | None" = None) -> None:
        self.shared, self.other = shared, other


def test_state_bytes_count_the_optimizer_and_the_runs_own_callbacks_once(tmp_path):
    torch.manual_seed(0)
    model = _Linear()
    shared = torch.zeros(25)  # 100 bytes, held by both callbacks (one also holds the other)
    first = _Holds(shared)
    first.data = TensorDataset(torch.zeros(50))  # data a callback reads (held-out batches): not its state
    recorder = RunRecorder(log_every=1)
    trainer = pl.Trainer(
        max_steps=2,
        callbacks=[first, _Holds(shared, first), recorder, LearningRateMonitor()],
        logger=CSVLogger(tmp_path),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, DataLoader(TensorDataset(torch.randn(8, 3), torch.randn(8, 1)), batch_size=4))
    # AdamW: two moments of the 4 parameters' floats (3 weights + 1 bias) and a 4-byte step per tensor
    assert recorder.as_dict()["optimizer_state_bytes"] == 2 * 4 * 4 + 2 * 4
    assert recorder.as_dict()["callback_state_bytes"] == 100  # Lightning's monitor, the recorder, the data: not counted


class _Linear(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Linear(3, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=1e-2)
