"""Recording a model's call inputs and chosen layers' outputs with forward hooks (no Lightning)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn


def main_tensor(output, what: str) -> torch.Tensor:
    """The tensor a module's output stands for: itself, `.logits`, or the first value of a tuple or mapping
    (a Hugging Face ModelOutput is both; its first value is `last_hidden_state` or `logits`)."""
    if isinstance(output, torch.Tensor):
        return output
    logits = getattr(output, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    values = list(output.values()) if isinstance(output, Mapping) else output
    if isinstance(values, (tuple, list)) and values and isinstance(values[0], torch.Tensor):
        return values[0]
    raise TypeError(f"cannot find the tensor in the output of {what}: got {type(output).__name__}.")


def named_layers(model: nn.Module, names: Sequence[str], argument: str) -> dict[str, nn.Module]:
    """model.get_submodule for each name, with an error that names the argument and the missing layer."""
    layers = {}
    for name in names:
        try:
            layers[name] = model.get_submodule(name)
        except AttributeError:
            raise ValueError(
                f"`{argument}` names {name!r}, which is not a submodule of {type(model).__name__}."
            ) from None
    return layers


class Capture:
    """While entered: the first call's (args, kwargs) and output of `root` (with record_inputs) and the
    first output of each layer."""

    def __init__(self, root: nn.Module, layers: Mapping[str, nn.Module], record_inputs: bool) -> None:
        self.root, self.layers, self.record_inputs = root, layers, record_inputs
        self.inputs: tuple[tuple, dict] | None = None
        self.output = None
        self.outputs: dict[str, torch.Tensor] = {}
        self._handles = []

    def __enter__(self) -> Capture:
        if self.record_inputs:
            self._handles.append(self.root.register_forward_pre_hook(self._record_inputs, with_kwargs=True))
            self._handles.append(self.root.register_forward_hook(self._record_output))
        for name, layer in self.layers.items():
            self._handles.append(layer.register_forward_hook(self._recorder(name)))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _record_inputs(self, module, args, kwargs):
        if self.inputs is None:
            self.inputs = (args, kwargs)

    def _record_output(self, module, args, output):
        if self.output is None:
            self.output = output

    def _recorder(self, name: str):
        def hook(module, args, output):
            self.outputs.setdefault(name, main_tensor(output, f"layer {name!r}"))

        return hook


def moved(value, device: torch.device, dtype: torch.dtype | None):
    """Tensors in nested tuples, lists and dicts moved to `device` (floating ones cast to `dtype`)."""
    if isinstance(value, torch.Tensor):
        cast = dtype if dtype is not None and value.is_floating_point() else None
        return value.to(device=device, dtype=cast)
    if isinstance(value, (tuple, list)):
        return type(value)(moved(v, device, dtype) for v in value)
    if isinstance(value, dict):
        return {k: moved(v, device, dtype) for k, v in value.items()}
    return value
