"""Optimizers and schedules by name (optim.py): nanoGPT's schedule, each optimizer, the settings' checks."""

import pytest
import torch

from lightning_hybrid.models import LanguageModel
from lightning_hybrid.optim import OptimizerSettings, make_optimizer, warmup_constant, warmup_cosine


def test_schedules():
    # nanoGPT's: (it + 1) / (warmup + 1) during warm-up, then cosine from 1 to min_ratio.
    assert warmup_cosine(0, 100, 2000, 0.1) == pytest.approx(1 / 101)
    assert warmup_cosine(100, 100, 2000, 0.1) == pytest.approx(1.0)
    assert warmup_cosine(1050, 100, 2000, 0.1) == pytest.approx(0.55)
    assert warmup_cosine(2000, 100, 2000, 0.1) == warmup_cosine(5000, 100, 2000, 0.1) == pytest.approx(0.1)
    assert warmup_constant(500, 100) == 1.0 and warmup_constant(49, 99) == 0.5


@pytest.mark.parametrize(
    "name,cls",
    [
        ("adamw", "AdamW"),
        ("schedulefree_adamw", "AdamWScheduleFree"),
        ("prodigy", "Prodigy"),
        ("mechanic", "MechanizedAdamW"),
    ],
)
def test_make_optimizer(name, cls):
    groups = [{"params": [torch.nn.Parameter(torch.zeros(2))], "weight_decay": 0.1}]
    assert type(make_optimizer(name, groups, 1e-3, (0.9, 0.99), 10)).__name__ == cls


def test_unknown_optimizer_and_schedule_are_value_errors():
    with pytest.raises(
        ValueError, match=r"`optimizer` must be one of 'adamw', 'schedulefree_adamw', 'prodigy', 'mechanic'; got 'sgd'"
    ):
        LanguageModel(optimizer="sgd")
    with pytest.raises(ValueError, match=r"`schedule` must be one of 'cosine', 'constant'; got 'linear'"):
        LanguageModel(schedule="linear")


def test_settings_check_every_field_by_its_name():
    assert OptimizerSettings(betas=[0.9, 0.95]).betas == (0.9, 0.95)  # a YAML list becomes a tuple
    for kwargs, match in [
        ({"lr": 0}, "`lr` must be a positive finite number, got 0"),
        ({"weight_decay": -1}, "`weight_decay` must be a finite number >= 0, got -1"),
        ({"betas": (0.9, 1.0)}, r"`betas` must be a finite number in \[0, 1\), got 1.0"),
        ({"warmup_steps": -1}, "`warmup_steps` must be a non-negative integer, got -1"),
        ({"decay_steps": 1.5}, "`decay_steps` must be an integer, got 1.5"),
    ]:
        with pytest.raises(ValueError, match=match):
            OptimizerSettings(**kwargs)


def test_schedule_free_adamw_gets_no_scheduler():
    model = LanguageModel(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8, optimizer="schedulefree_adamw")
    assert type(model.configure_optimizers()).__name__ == "AdamWScheduleFree"
