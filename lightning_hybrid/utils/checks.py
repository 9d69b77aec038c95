"""Argument validation for every layer: each check returns the value or raises a ValueError that names
the argument as the user wrote it and the value it got.

The one order everywhere is (name, value, ...): `positive_int("batch_size", batch_size)`.
"""

from __future__ import annotations

import math
from typing import Any


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _interval(low: float | None, high: float | None, open_low: bool, open_high: bool) -> str:
    if high is None:
        return f"{'>' if open_low else '>='} {low:g}"
    if low is None:
        return f"{'<' if open_high else '<='} {high:g}"
    return f"in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"


def _none_note(or_none: bool, others: tuple[Any, ...] = ()) -> str:
    extra = ((None,) if or_none else ()) + tuple(others)
    return "".join(f" or {v!r}" for v in extra)


def integer(
    name: str,
    value: Any,
    minimum: int | None = None,
    maximum: int | None = None,
    *,
    or_none: bool = False,
    or_values: tuple[Any, ...] = (),
) -> Any:
    """An int (not a bool) within [minimum, maximum]; None passes when `or_none`, and so do `or_values`
    (such as "auto")."""
    if (value is None and or_none) or (value in or_values and not isinstance(value, (bool, int))):
        return value
    fits = isinstance(value, int) and not isinstance(value, bool)
    fits = fits and (minimum is None or value >= minimum) and (maximum is None or value <= maximum)
    if not fits:
        if maximum is None and minimum in (0, 1):
            kind = "a positive integer" if minimum == 1 else "a non-negative integer"
        elif minimum is None and maximum is None:
            kind = "an integer"
        else:
            kind = f"an integer {_interval(minimum, maximum, False, False)}"
        raise ValueError(f"`{name}` must be {kind}{_none_note(or_none, or_values)}, got {value!r}.")
    return value


def number(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    open_low: bool = False,
    open_high: bool = False,
    or_none: bool = False,
) -> Any:
    """A finite int or float (not a bool) within the interval, returned as a float; None passes when `or_none`."""
    if value is None and or_none:
        return None
    fits = _is_number(value) and math.isfinite(value)
    fits = fits and (low is None or (value > low if open_low else value >= low))
    fits = fits and (high is None or (value < high if open_high else value <= high))
    if not fits:
        if (low, high, open_low) == (0, None, True):
            kind = "a positive finite number"
        else:
            kind = "a finite number" + ("" if low is None and high is None else " " + _interval(low, high, open_low, open_high))
        raise ValueError(f"`{name}` must be {kind}{_none_note(or_none)}, got {value!r}.")
    return float(value)


def positive(name: str, value: Any) -> float:
    return number(name, value, 0, open_low=True)


def non_negative(name: str, value: Any) -> float:
    return number(name, value, 0)


def in_open_unit(name: str, value: Any) -> float:
    return number(name, value, 0, 1, open_low=True, open_high=True)


def above_one(name: str, value: Any) -> float:
    return number(name, value, 1, open_low=True)


def positive_int(name: str, value: Any) -> int:
    return integer(name, value, 1)


def non_negative_int(name: str, value: Any) -> int:
    return integer(name, value, 0)


def choice(name: str, value: Any, options: tuple[Any, ...]) -> Any:
    """`value` if it is one of `options`."""
    if value not in options:
        raise ValueError(f"`{name}` must be one of {', '.join(map(repr, options))}; got {value!r}.")
    return value
