"""Recording calls with forward hooks (distill/capture.py): first inputs and outputs, hooks removed after."""

import pytest
import torch
from torch import nn

from lightning_hybrid.distill.capture import Capture, main_tensor, moved, named_layers


def test_capture_records_the_first_call_and_chosen_layer_outputs_then_removes_its_hooks():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    x1, x2 = torch.randn(2, 3), torch.randn(2, 3)
    with Capture(model, named_layers(model, ["0"], "hidden_pairs"), record_inputs=True) as seen:
        out = model(x1)
        model(x2)
    assert seen.inputs[0][0] is x1 and seen.output is out
    torch.testing.assert_close(seen.outputs["0"], model[0](x1))
    assert not model._forward_hooks and not model._forward_pre_hooks and not model[0]._forward_hooks


def test_a_missing_layer_is_named_with_the_argument():
    with pytest.raises(ValueError, match="`hidden_pairs` names 'nope', which is not a submodule of Linear"):
        named_layers(nn.Linear(2, 2), ["nope"], "hidden_pairs")


def test_main_tensor_finds_logits_first_values_and_refuses_others():
    t = torch.zeros(1)
    assert main_tensor(t, "m") is t and main_tensor((t, 1), "m") is t and main_tensor({"h": t}, "m") is t

    class Output:
        logits = t

    assert main_tensor(Output(), "m") is t
    with pytest.raises(TypeError, match="cannot find the tensor in the output of m: got str"):
        main_tensor("text", "m")


def test_moved_casts_floating_tensors_in_nested_containers_only():
    out = moved({"a": [torch.zeros(1), torch.zeros(1, dtype=torch.long)], "b": 3}, torch.device("cpu"), torch.float64)
    assert out["a"][0].dtype == torch.float64 and out["a"][1].dtype == torch.long and out["b"] == 3
