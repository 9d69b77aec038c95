"""A model with a chainable LR scheduler, and a probe of the LRs and steps the hybrid callbacks set."""

import lightning.pytorch as pl
import torch

from helpers.models import NestedClassifier, classification_loader
from lightning_hybrid import AuxLRController


class ScheduledClassifier(NestedClassifier):
    """NestedClassifier with AdamW and CosineAnnealingLR, a scheduler that computes from the current LR."""

    def __init__(self, nan_at_step: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.nan_at_step = nan_at_step

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        if self.trainer.global_step == self.nan_at_step:
            loss = loss * float("nan")
        return loss

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=20, eta_min=1e-4)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


class StepProbe(pl.Callback):
    """Per optimizer step: the group-0 LR in effect and ||dtheta|| of the step."""

    def __init__(self) -> None:
        self.lrs: list[float] = []
        self.step_norms: list[float] = []
        self.weights: list[list[torch.Tensor]] = []
        self._before: list[torch.Tensor] | None = None
        self._step = -1

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step != self._step:
            self._step = trainer.global_step
            self._before = [p.detach().clone() for p in pl_module.parameters()]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step != self._step:  # an optimizer step happened in this batch
            after = [p.detach().clone() for p in pl_module.parameters()]
            self.step_norms.append(float(torch.cat([(a - b).reshape(-1) for a, b in zip(after, self._before)]).norm()))
            self.weights.append(after)


class HeldOutData(pl.LightningDataModule):
    """classification_loader's 96 training items, and 40 others (another seed) held out."""

    def train_dataloader(self):
        return classification_loader(n=96)

    def heldout_dataloader(self):
        return classification_loader(n=40, seed=1)


def fit(callbacks, max_steps=12, ckpt_path=None, model=None, heldout=False, **trainer_kwargs):
    torch.manual_seed(0)
    model = model or ScheduledClassifier()
    defaults = {
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
    }
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=max_steps,
        callbacks=callbacks,
        limit_val_batches=0,
        **{**defaults, **trainer_kwargs},
    )
    if heldout:  # True: HeldOutData; or a DataModule of the test's own
        data = {"datamodule": heldout if isinstance(heldout, pl.LightningDataModule) else HeldOutData()}
    else:
        data = {"train_dataloaders": classification_loader(n=96)}
    trainer.fit(model, ckpt_path=ckpt_path, **data)  # 6 steps an epoch
    return trainer, model


class LRLog(pl.Callback):
    """The LR each optimizer step runs with, read just before the update."""

    def __init__(self) -> None:
        self.lrs: list[float] = []
        self.scheduled: list[float] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.lrs.append(optimizer.param_groups[0]["lr"])
        aux = next((c for c in trainer.callbacks if isinstance(c, AuxLRController)), None)
        if aux is not None:
            self.scheduled.append(aux.lrs.scheduled[0][0])
