"""Models used by the main job and the benchmarks."""

from lightning_hybrid.models.classifier import MLPClassifier
from lightning_hybrid.models.gpt import GPT, GPTConfig
from lightning_hybrid.models.llama import LlamaLanguageModel
from lightning_hybrid.models.lm import LanguageModel
from lightning_hybrid.models.supervised import SupervisedModule

__all__ = ["GPT", "GPTConfig", "LanguageModel", "LlamaLanguageModel", "MLPClassifier", "SupervisedModule"]
