"""Thin Lightning adapters over quant/ and control/."""

from lightning_hybrid.callbacks.qat import TernaryQAT

__all__ = ["TernaryQAT"]
