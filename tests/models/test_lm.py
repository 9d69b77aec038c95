"""LanguageModel (models/lm.py): flat hyperparameters that become the GPT's config and the optimizer's
settings, checked when the module is built; the loss is next-token cross-entropy."""

import pytest
import torch
import torch.nn.functional as F

from lightning_hybrid.models import LanguageModel
from lightning_hybrid.optim import OptimizerSettings

SMALL = {"vocab_size": 13, "block_size": 8, "n_layer": 1, "n_head": 2, "n_embd": 8}


def test_hyperparameters_become_the_config_and_the_optimizer_settings():
    model = LanguageModel(**SMALL, lr=3e-3, betas=[0.9, 0.95], warmup_steps=5, decay_steps=50)
    assert (model.model.cfg.vocab_size, model.model.cfg.n_embd) == (13, 8)
    assert model.optimizer_settings == OptimizerSettings(lr=3e-3, betas=(0.9, 0.95), warmup_steps=5, decay_steps=50)
    assert model.hparams.lr == 3e-3  # kept flat: checkpoints and Hydra overrides (model.lr=...) name them


def test_configure_optimizers_decays_matrices_only_and_schedules_every_step():
    model = LanguageModel(**SMALL, lr=1e-2, warmup_steps=4, decay_steps=20)
    config = model.configure_optimizers()
    groups = config["optimizer"].param_groups
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    assert all(p.dim() >= 2 for p in groups[0]["params"]) and all(p.dim() < 2 for p in groups[1]["params"])
    assert config["lr_scheduler"]["interval"] == "step"
    assert groups[0]["lr"] == pytest.approx(1e-2 / 5)  # step 0 of a 4-step linear warm-up: (0 + 1) / (4 + 1)


def test_the_loss_is_next_token_cross_entropy():
    torch.manual_seed(0)
    model = LanguageModel(**SMALL)
    x, y = torch.randint(0, 13, (2, 8)), torch.randint(0, 13, (2, 8))
    expected = F.cross_entropy(model(x).reshape(-1, 13), y.reshape(-1))  # the oracle: the formula itself
    torch.testing.assert_close(model._loss((x, y)), expected)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lr": -1.0}, "`lr` must be a positive finite number, got -1.0"),
        ({"betas": [0.9]}, r"`betas` must be two numbers in \[0, 1\), got \[0.9\]"),
        ({"n_head": 3}, r"`n_embd` \(8\) must be divisible by `n_head` \(3\)"),
        ({"min_lr_ratio": 2.0}, r"`min_lr_ratio` must be a finite number in \[0, 1\], got 2.0"),
    ],
)
def test_bad_hyperparameters_fail_when_the_module_is_built(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LanguageModel(**{**SMALL, **kwargs})
