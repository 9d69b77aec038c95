"""The argument checks live in lightning_hybrid.utils.checks (every layer uses them); this path still works."""

from lightning_hybrid.utils.checks import above_one, choice, in_open_unit, non_negative_int, positive, positive_int

__all__ = ["above_one", "choice", "in_open_unit", "non_negative_int", "positive", "positive_int"]
