"""Thin Lightning adapters over quant/ and control/."""

from lightning_hybrid.callbacks.aux_lr import AuxLRController
from lightning_hybrid.callbacks.checkpoint import LastCheckpoint, RunStopped
from lightning_hybrid.callbacks.compile import CompileModel
from lightning_hybrid.callbacks.compression import GradientCompression
from lightning_hybrid.callbacks.learned_scale import LearnedScale
from lightning_hybrid.callbacks.qat import TernaryQAT
from lightning_hybrid.callbacks.schedulefree import ScheduleFreeMode
from lightning_hybrid.callbacks.trust_region import TrustRegion

__all__ = [
    "AuxLRController",
    "CompileModel",
    "GradientCompression",
    "LastCheckpoint",
    "LearnedScale",
    "RunStopped",
    "ScheduleFreeMode",
    "TernaryQAT",
    "TrustRegion",
]
