"""SupervisedModule: one loss, logged as train_loss and val_loss; the optimizer from its settings."""

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from lightning_hybrid.models import SupervisedModule
from lightning_hybrid.optim import OptimizerSettings


class Regression(SupervisedModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Linear(3, 1)
        self.optimizer_settings = OptimizerSettings(lr=1e-2, warmup_steps=0, decay_steps=20)

    def _loss(self, batch):
        x, y = batch
        return torch.nn.functional.mse_loss(self.net(x), y)


def test_a_subclass_with_a_loss_trains_and_logs_both_losses(tmp_path):
    torch.manual_seed(0)
    x = torch.randn(64, 3)
    data = DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=16)
    trainer = pl.Trainer(
        max_steps=20,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(Regression(), data, data)
    assert {"train_loss", "val_loss"} <= set(trainer.callback_metrics)
    assert isinstance(trainer.lr_scheduler_configs[0].scheduler, torch.optim.lr_scheduler.LambdaLR)


def test_a_subclass_without_a_loss_says_so():
    with pytest.raises(NotImplementedError):
        SupervisedModule()._loss(None)


def test_loss_is_the_training_loss_without_logging():
    model = Regression()
    x = torch.randn(8, 3)
    batch = (x, x.sum(1, keepdim=True))
    expected = torch.nn.functional.mse_loss(model.net(x), batch[1])  # oracle: the loss written out
    assert torch.equal(model.loss(batch), expected)
