"""Framework-free cores of the hybrid optimizer (no Lightning imports): the auxiliary LR network, its
learning signal, the LR multiplier that survives any scheduler, a learned scale on the accumulated
updates (Mechanic's), and the trust-region maths. The callbacks in lightning_hybrid.callbacks adapt them."""

from lightning_hybrid.control.aux_net import AuxLRLearner, AuxLRSettings, AuxNetwork
from lightning_hybrid.control.lr_scale import ScaledLR
from lightning_hybrid.control.scale import Displacement, ScaleSettings, ScaleTuner
from lightning_hybrid.control.signals import FEATURE_NAMES, SignalTracker
from lightning_hybrid.control.trace import ParameterTrace, TraceReading
from lightning_hybrid.control.trust_region import StepOutcome, TrustRegionCore, TrustRegionSettings

__all__ = [
    "FEATURE_NAMES",
    "AuxLRLearner",
    "AuxLRSettings",
    "AuxNetwork",
    "Displacement",
    "ParameterTrace",
    "ScaleSettings",
    "ScaledLR",
    "ScaleTuner",
    "SignalTracker",
    "StepOutcome",
    "TraceReading",
    "TrustRegionCore",
    "TrustRegionSettings",
]
