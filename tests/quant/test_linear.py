"""BitLinear (quant/linear.py): it shares the nn.Linear's Parameters, computes the reference maths (the
oracle: quant/reference.py's formulas), and bit_linears finds the converted layers."""

import pytest
import torch
from torch import nn

from lightning_hybrid.quant import BitLinear


def test_from_linear_shares_parameters_and_keeps_training_mode():
    lin = nn.Linear(5, 3)
    lin.eval()
    layer = BitLinear.from_linear(lin, bits=1)
    assert layer.weight is lin.weight and layer.bias is lin.bias
    assert not layer.training and layer.bits == 1
    assert BitLinear.from_linear(nn.Linear(5, 3, bias=False)).bias is None


def test_from_linear_rejects_other_modules():
    with pytest.raises(TypeError, match="`linear` must be an nn.Linear, got Conv1d"):
        BitLinear.from_linear(nn.Conv1d(2, 2, 1))


@pytest.mark.parametrize("bad", [1, 17, 8.0, True])
def test_act_bits_out_of_range_is_a_value_error(bad):
    with pytest.raises(ValueError, match=r"`act_bits` must be an integer in \[2, 16\] or None"):
        BitLinear(4, 4, act_bits=bad)


def test_bitlinear_forward_matches_reference_maths():
    torch.manual_seed(0)
    layer = BitLinear(7, 5)
    x = torch.randn(3, 2, 7)
    s = layer.weight.abs().mean()
    w_q = (layer.weight / s).round().clamp(-1, 1) * s
    g = x.abs().amax(-1, keepdim=True)
    x_q = (x * 127 / g).round().clamp(-127, 127) * g / 127
    torch.testing.assert_close(layer(x), x_q @ w_q.T + layer.bias, rtol=1e-6, atol=1e-6)


def test_bitlinear_act_bits_none_leaves_input_alone():
    torch.manual_seed(0)
    layer = BitLinear(7, 5, act_bits=None)
    x = torch.randn(4, 7)
    from lightning_hybrid.quant.reference import quantize_weight

    torch.testing.assert_close(layer(x), torch.nn.functional.linear(x, quantize_weight(layer.weight, 1.58), layer.bias))


def test_bitlinear_traces_into_one_graph_without_breaks():
    torch.manual_seed(0)
    explained = torch._dynamo.explain(BitLinear(64, 48))(torch.randn(4, 64))
    assert explained.graph_count == 1 and explained.graph_break_count == 0, explained.break_reasons


@pytest.mark.slow
def test_bitlinear_compiled_by_inductor_matches_eager_forward_and_gradients():
    """Oracle: the eager layer; inductor reorders float sums, so 1e-6 of the largest value (measured 1.1e-7)."""
    torch.manual_seed(0)
    layer, x = BitLinear(64, 48), torch.randn(4, 64, requires_grad=True)
    results = []
    for forward in (layer, torch.compile(layer)):
        x.grad = layer.weight.grad = layer.bias.grad = None
        out = forward(x)
        out.square().sum().backward()
        results.append([out.detach(), x.grad.clone(), layer.weight.grad.clone(), layer.bias.grad.clone()])
    for eager, compiled in zip(*results):
        scale = float(eager.abs().max())
        torch.testing.assert_close(compiled, eager, rtol=1e-6, atol=1e-6 * scale)
