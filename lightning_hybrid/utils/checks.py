"""Argument validation for every layer: each check returns the value or raises a ValueError that names
the argument as the user wrote it and the value it got.

The one order everywhere is (name, value, ...): `positive_int("batch_size", batch_size)`. `allowed`
lists values that pass as they are, such as None ("no limit") or "auto".
"""

from __future__ import annotations

import math
from typing import Any


def _interval(low: float | None, high: float | None, open_low: bool, open_high: bool) -> str:
    if high is None:
        return f"{'>' if open_low else '>='} {low:g}"
    if low is None:
        return f"{'<' if open_high else '<='} {high:g}"
    return f"in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"


def _fail(name: str, kind: str, value: Any, allowed: tuple[Any, ...]) -> None:
    alternatives = "".join(f" or {v!r}" for v in allowed)
    raise ValueError(f"`{name}` must be {kind}{alternatives}, got {value!r}.")


def _is_allowed(value: Any, allowed: tuple[Any, ...]) -> bool:
    return any(value is a or (type(value) is type(a) and value == a) for a in allowed)


def integer(name: str, value: Any, minimum: int | None = None, maximum: int | None = None, *, allowed=()) -> Any:
    """An int (not a bool) within [minimum, maximum], or one of `allowed`."""
    if _is_allowed(value, allowed):
        return value
    fits = isinstance(value, int) and not isinstance(value, bool)
    if not (fits and (minimum is None or value >= minimum) and (maximum is None or value <= maximum)):
        if maximum is None and minimum in (0, 1):
            kind = "a positive integer" if minimum == 1 else "a non-negative integer"
        elif minimum is None and maximum is None:
            kind = "an integer"
        else:
            kind = f"an integer {_interval(minimum, maximum, False, False)}"
        _fail(name, kind, value, allowed)
    return value


def number(name: str, value: Any, low=None, high=None, *, open_low=False, open_high=False, allowed=()) -> Any:
    """A finite int or float (not a bool) in the interval from `low` to `high` (each open or closed),
    returned as a float, or one of `allowed` as it is."""
    if _is_allowed(value, allowed):
        return value
    fits = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    fits = fits and (low is None or (value > low if open_low else value >= low))
    if not (fits and (high is None or (value < high if open_high else value <= high))):
        _fail(name, _number_kind(low, high, open_low, open_high), value, allowed)
    return float(value)


def _number_kind(low: float | None, high: float | None, open_low: bool, open_high: bool) -> str:
    if (low, high, open_low) == (0, None, True):
        return "a positive finite number"
    if low is None and high is None:
        return "a finite number"
    return f"a finite number {_interval(low, high, open_low, open_high)}"


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
