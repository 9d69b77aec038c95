"""Models used by the main job and the benchmarks."""

from lightning_hybrid.models.gpt import GPT, GPTConfig
from lightning_hybrid.models.lm import LanguageModel

__all__ = ["GPT", "GPTConfig", "LanguageModel"]
