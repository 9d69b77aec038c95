"""Bytes of tensor state that an optimizer or a callback holds, beyond the model's own tensors."""

from __future__ import annotations

from collections.abc import Iterable
from types import FunctionType, MethodType, ModuleType
from typing import Any

import torch

# Objects whose tensors are not the holder's state: the model, the trainer and the optimizers are
# counted (or not) on their own, and functions and modules hold no per-run state.
_OPAQUE = (type, ModuleType, FunctionType, MethodType, torch.optim.Optimizer)


def _storage(t: torch.Tensor) -> tuple[int, int]:
    s = t.untyped_storage()
    return s.data_ptr(), s.nbytes()


def storages_of(tensors: Iterable[torch.Tensor]) -> set[int]:
    """The storage addresses of `tensors` (and of their gradients): what `held_bytes` leaves out."""
    out: set[int] = set()
    for t in tensors:
        out.add(_storage(t)[0])
        if t.grad is not None:
            out.add(_storage(t.grad)[0])
    return out


def _children(obj: Any, skip: tuple[type, ...]) -> Iterable[Any]:
    if isinstance(obj, dict):
        return [*obj.keys(), *obj.values()]
    if isinstance(obj, (list, tuple, set, frozenset)):
        return obj
    if isinstance(obj, torch.nn.Module):
        return [*obj.parameters(), *obj.buffers()]
    if isinstance(obj, _OPAQUE + skip) or not hasattr(obj, "__dict__"):
        return ()
    return vars(obj).values()


def held_bytes(root: Any, exclude: set[int], skip: tuple[type, ...] = ()) -> int:
    """Bytes of the distinct tensor storages reachable from `root` through containers, modules and
    object attributes, except the storages in `exclude` (the model's parameters and gradients) and
    anything inside instances of `skip` (for a callback: the trainer and the model). Each storage
    counts once, however many tensors view it."""
    seen, visited, total, stack = set(exclude), set(), 0, [root]
    while stack:
        obj = stack.pop()
        if id(obj) in visited:
            continue
        visited.add(id(obj))
        if isinstance(obj, torch.Tensor):
            ptr, nbytes = _storage(obj)
            if ptr not in seen:
                seen.add(ptr)
                total += nbytes
            continue
        stack.extend(_children(obj, skip))
    return total
