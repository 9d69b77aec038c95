"""What PrecisionAllocator takes from a Trainer (callbacks/_plan.py): validation batches on the module's
device, and the loss training_step returns, with logging muted."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from helpers.models import NestedClassifier, classification_loader
from lightning_hybrid.callbacks._plan import held_out_batches, step_loss


class WithValidation(NestedClassifier):
    def val_dataloader(self):
        return classification_loader(n=48, batch_size=16)


def test_held_out_batches_are_the_first_validation_batches():
    module = WithValidation()
    batches = held_out_batches(SimpleNamespace(datamodule=None), module, 2)
    expected = list(classification_loader(n=48, batch_size=16))[:2]
    assert len(batches) == 2
    for (x, y), (ex, ey) in zip(batches, expected):
        assert torch.equal(x, ex) and torch.equal(y, ey)


def test_without_a_val_dataloader_the_error_says_what_to_do():
    with pytest.raises(ValueError, match="neither the DataModule nor the LightningModule defines val_dataloader"):
        held_out_batches(SimpleNamespace(datamodule=None), NestedClassifier(), 2)


def test_step_loss_is_the_training_loss_and_logging_comes_back():
    module = NestedClassifier()
    x, y = next(iter(classification_loader()))
    log = module.log
    loss = step_loss(module, (x, y))  # outside a fit loop: self.log would raise
    torch.testing.assert_close(loss, F.cross_entropy(module(x), y))
    assert module.log == log


def test_a_training_step_without_a_loss_tensor_asks_for_loss_fn():
    class NoLoss(NestedClassifier):
        def training_step(self, batch, batch_idx):
            return {"loss": None}

    with pytest.raises(ValueError, match=r"give PrecisionAllocator\(loss_fn=...\)"):
        step_loss(NoLoss(), next(iter(classification_loader())))
