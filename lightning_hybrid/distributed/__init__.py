"""Distributed training helpers without Lightning: gradient compression hooks for DDP."""

from lightning_hybrid.distributed.terngrad import TernGradState, ternarize, terngrad_hook

__all__ = ["TernGradState", "ternarize", "terngrad_hook"]
