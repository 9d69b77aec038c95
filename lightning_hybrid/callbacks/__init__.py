"""Thin Lightning adapters over quant/ and control/."""

from lightning_hybrid.callbacks.qat import TernaryQAT
from lightning_hybrid.callbacks.schedulefree import ScheduleFreeMode

__all__ = ["ScheduleFreeMode", "TernaryQAT"]
