import lightning.pytorch as pl
import pytest
import torch

from lightning_hybrid.callbacks import ScheduleFreeMode
from lightning_hybrid.data import TextDataModule
from lightning_hybrid.models import LanguageModel
from lightning_hybrid.optim import make_optimizer, warmup_constant, warmup_cosine


def test_schedules():
    # nanoGPT's: (it + 1) / (warmup + 1) during warm-up, then cosine from 1 to min_ratio.
    assert warmup_cosine(0, 100, 2000, 0.1) == pytest.approx(1 / 101)
    assert warmup_cosine(100, 100, 2000, 0.1) == pytest.approx(1.0)
    assert warmup_cosine(1050, 100, 2000, 0.1) == pytest.approx(0.55)
    assert warmup_cosine(2000, 100, 2000, 0.1) == warmup_cosine(5000, 100, 2000, 0.1) == pytest.approx(0.1)
    assert warmup_constant(500, 100) == 1.0 and warmup_constant(49, 99) == 0.5


@pytest.mark.parametrize(
    "name,cls", [("adamw", "AdamW"), ("schedulefree_adamw", "AdamWScheduleFree"), ("prodigy", "Prodigy")]
)
def test_make_optimizer(name, cls):
    groups = [{"params": [torch.nn.Parameter(torch.zeros(2))], "weight_decay": 0.1}]
    assert type(make_optimizer(name, groups, 1e-3, (0.9, 0.99), 10)).__name__ == cls


def test_unknown_optimizer_and_schedule_are_value_errors():
    with pytest.raises(
        ValueError, match=r"`optimizer` must be one of 'adamw', 'schedulefree_adamw', 'prodigy'; got 'sgd'"
    ):
        LanguageModel(optimizer="sgd")
    with pytest.raises(ValueError, match=r"`schedule` must be one of 'cosine', 'constant'; got 'linear'"):
        LanguageModel(schedule="linear")


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
