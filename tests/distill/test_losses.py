"""Distillation losses against their definitions written out by hand (exact up to fp32 rounding, 1e-6)."""

import pytest
import torch

from lightning_hybrid.distill import DistillLoss, hidden_distance, kl_logits


def test_kl_is_hintons_softened_kl_times_t_squared():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(2, 3, 5, generator=g), torch.randn(2, 3, 5, generator=g)
    temperature = 3.0
    p_t, p_s = torch.softmax(t / temperature, -1), torch.softmax(s / temperature, -1)
    oracle = (p_t * (p_t.log() - p_s.log())).sum(-1).mean() * temperature**2  # mean over the 6 rows
    torch.testing.assert_close(kl_logits(s, t, temperature), oracle, rtol=1e-6, atol=1e-6)
    assert float(kl_logits(t, t, temperature)) == pytest.approx(0.0, abs=1e-6)


def test_hidden_distances():
    s, t = torch.tensor([[1.0, 0.0], [0.0, 2.0]]), torch.tensor([[0.0, 1.0], [0.0, 4.0]])
    assert float(hidden_distance(s, t, "mse")) == pytest.approx((1 + 1 + 0 + 4) / 4)
    assert float(hidden_distance(s, t, "cosine")) == pytest.approx((1 - 0.0 + 1 - 1.0) / 2)


def test_total_weights_each_part():
    loss = DistillLoss(temperature=1.0, task_weight=0.5, kl_weight=2.0, hidden_weight=3.0)
    s, t = torch.zeros(1, 4), torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    parts = loss(torch.tensor(1.0), s, t, {"a": torch.ones(3)}, {"a": torch.zeros(3)})
    assert set(parts) == {"task", "kl", "hidden", "loss"}
    torch.testing.assert_close(parts["loss"], 0.5 * 1.0 + 2.0 * kl_logits(s, t, 1.0) + 3.0 * 1.0)
    without_task = loss(None, s, t, {"a": torch.ones(3)}, {"a": torch.zeros(3)})
    assert "task" not in without_task


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"temperature": 0}, r"`temperature` must be a positive finite number, got 0"),
        ({"kl_weight": -1}, r"`kl_weight` must be a finite number >= 0, got -1"),
        ({"hidden_loss": "l1"}, r"`hidden_loss` must be one of 'mse', 'cosine'; got 'l1'"),
        ({"kl_weight": 0}, "`kl_weight` and `hidden_weight` are both 0"),
    ],
)
def test_bad_settings_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        DistillLoss(**kwargs)
