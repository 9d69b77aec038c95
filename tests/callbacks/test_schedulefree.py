"""ScheduleFreeMode (callbacks/schedulefree.py): train() for training steps, eval() for validation and after fit."""

import lightning.pytorch as pl

from lightning_hybrid.callbacks import ScheduleFreeMode
from lightning_hybrid.data import TextDataModule
from lightning_hybrid.models import LanguageModel


def test_schedulefree_mode_switches_around_validation_and_ends_in_eval(tmp_path):
    # Without the callback the schedule-free optimizer refuses to step after a mid-epoch validation;
    # with it, training goes on and the run ends in eval mode (the averaged weights).
    pl.seed_everything(0)
    data = TextDataModule(max_bytes=50_000, block_size=16, batch_size=4, val_windows=8)
    model = LanguageModel(
        vocab_size=256, block_size=16, n_layer=1, n_head=2, n_embd=16, optimizer="schedulefree_adamw", warmup_steps=2
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=12,
        val_check_interval=5,
        callbacks=[ScheduleFreeMode()],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, data)
    assert trainer.global_step == 12
    assert trainer.optimizers[0].param_groups[0]["train_mode"] is False
