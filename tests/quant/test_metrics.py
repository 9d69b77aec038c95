import pytest
import torch
from torch import nn

from lightning_hybrid.quant import BitLinear, QuantizationError
from lightning_hybrid.quant import reference as ref


def _layers():
    torch.manual_seed(0)
    return {"a": BitLinear(8, 4), "b": BitLinear(16, 8, bits=1)}


def test_per_layer_and_mean_against_reference():
    layers = _layers()
    metric = QuantizationError(list(layers))
    metric.update(layers)
    out = metric.compute()
    for name, layer in layers.items():
        assert out[name].item() == pytest.approx(ref.relative_error(layer.weight, layer.bits).item(), rel=1e-6)
    assert out["mean"].item() == pytest.approx((out["a"].item() + out["b"].item()) / 2, rel=1e-6)


def test_averages_over_updates_and_accepts_a_module():
    layers = _layers()
    model = nn.ModuleDict(layers)
    metric = QuantizationError(["a", "b"])
    first = ref.relative_error(layers["a"].weight, 1.58).item()
    metric.update(model)
    with torch.no_grad():
        layers["a"].weight.mul_(torch.linspace(0.1, 3, 8))  # a different error
    second = ref.relative_error(layers["a"].weight, 1.58).item()
    metric.update(model)
    assert metric.compute()["a"].item() == pytest.approx((first + second) / 2, rel=1e-6)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="`layer_names` is empty"):
        QuantizationError([])
    with pytest.raises(KeyError, match=r"layers \['c'\] not found"):
        QuantizationError(["c"]).update(_layers())
