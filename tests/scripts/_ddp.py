"""The quiet 2-process CPU DDP Trainer the scripts here share."""

import lightning.pytorch as pl


def two_process_trainer(**kwargs) -> pl.Trainer:
    settings = dict(accelerator="cpu", devices=2, strategy="ddp", limit_val_batches=0, logger=False)
    settings.update(enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    return pl.Trainer(**{**settings, **kwargs})
