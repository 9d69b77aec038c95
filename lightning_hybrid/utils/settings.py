"""Settings dataclasses built from keyword arguments: strictly (an unknown name is an error) or by
picking their fields out of a larger mapping such as a LightningModule's hyperparameters."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def strict(cls: type[T], values: Mapping[str, Any], owner: str) -> T:
    """`cls(**values)`, where a name `cls` lacks is a TypeError that lists the names `owner` takes
    (the dataclass's __post_init__ checks the values themselves)."""
    unknown = sorted(set(values) - set(field_names(cls)))
    if unknown:
        raise TypeError(
            f"{owner} got unexpected argument(s) {', '.join(unknown)}; it takes {', '.join(field_names(cls))}."
        )
    return cls(**values)


def pick(cls: type[T], values: Mapping[str, Any], base: T | None = None) -> T:
    """`cls` from the entries of `values` that name its fields (other keys are ignored), over `base`'s
    values (None: the field defaults)."""
    chosen = {k: v for k, v in values.items() if k in field_names(cls)}
    return dataclasses.replace(base, **chosen) if base is not None else cls(**chosen)
