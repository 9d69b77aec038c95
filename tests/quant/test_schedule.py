"""Gradual quantization (quant/schedule.py): lam by step, and setting it on every BitLinear."""

import pytest
from torch import nn

from lightning_hybrid.quant import convert
from lightning_hybrid.quant.schedule import set_quant_lambda, warmup_lambda


@pytest.mark.parametrize(
    ("step", "warmup", "lam"), [(0, 10, 0.0), (5, 10, 0.5), (10, 10, 1.0), (50, 10, 1.0), (-3, 10, 0.0), (0, 0, 1.0)]
)
def test_lambda_rises_linearly_over_the_warmup(step, warmup, lam):
    assert warmup_lambda(step, warmup) == lam


def test_set_quant_lambda_reaches_every_bitlinear_of_a_module_or_a_mapping():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4))
    convert(model, exclude=[])
    set_quant_lambda(model, 0.25)
    assert [model[0].quant_lambda, model[2].quant_lambda] == [0.25, 0.25]
    set_quant_lambda({"0": model[0]}, 1)
    assert (model[0].quant_lambda, model[2].quant_lambda) == (1.0, 0.25) and isinstance(model[0].quant_lambda, float)
