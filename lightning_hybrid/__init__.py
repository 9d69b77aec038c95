"""lightning_hybrid: 1.58-bit and 1-bit quantization-aware training for PyTorch Lightning."""

from lightning_hybrid.callbacks import (
    AuxLRController,
    CompileModel,
    GradientCompression,
    LastCheckpoint,
    LearnedScale,
    TernaryQAT,
    TrustRegion,
)
from lightning_hybrid.data import ClusterDataModule, ClusteredTextDataModule
from lightning_hybrid.distill import Distillation
from lightning_hybrid.export import load_packed, save_packed
from lightning_hybrid.quant import BitLinear, QuantizationError, convert
from lightning_hybrid.quant.precision import PrecisionAllocator, PrecisionPlan

__version__ = "0.1.0"

__all__ = [
    "AuxLRController",
    "BitLinear",
    "ClusterDataModule",
    "ClusteredTextDataModule",
    "CompileModel",
    "Distillation",
    "GradientCompression",
    "LastCheckpoint",
    "LearnedScale",
    "PrecisionAllocator",
    "PrecisionPlan",
    "QuantizationError",
    "TernaryQAT",
    "TrustRegion",
    "__version__",
    "convert",
    "load_packed",
    "save_packed",
]
