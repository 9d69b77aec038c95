"""LlamaLanguageModel: a Hugging Face transformers LlamaForCausalLM, built from a config (no download), as
the main job's language model (`model=llama`), so that TernaryQAT trains a model transformers and
llama.cpp can run (lightning_hybrid.export.save_transformers, save_gguf)."""

from __future__ import annotations

import torch
from typing_extensions import override

from lightning_hybrid.models.lm import NextTokenModule
from lightning_hybrid.optim import OptimizerSettings
from lightning_hybrid.utils.settings import pick


class LlamaLanguageModel(NextTokenModule):
    """Next-token language model around `transformers.LlamaForCausalLM(LlamaConfig(...))`, trained as
    LanguageModel is (AdamW, warm-up, cosine: lightning_hybrid.optim.OptimizerSettings' arguments).

    The architecture arguments are LlamaConfig's: hidden_size, intermediate_size, num_hidden_layers,
    num_attention_heads, num_key_value_heads (grouped-query attention when fewer than the heads),
    rms_norm_eps, rope_theta, tie_word_embeddings; `block_size` is its max_position_embeddings.
    TernaryQAT's default rule keeps `lm_head` (and a tied head) at full precision. Needs `transformers`
    (the `export` extra).
    """

    def __init__(
        self,
        vocab_size: int = 256,
        block_size: int = 64,
        hidden_size: int = 256,
        intermediate_size: int = 512,
        num_hidden_layers: int = 2,
        num_attention_heads: int = 4,
        num_key_value_heads: int = 4,
        rms_norm_eps: float = 1e-5,
        rope_theta: float = 10000.0,
        tie_word_embeddings: bool = False,
        lr: float = 3e-3,
        weight_decay: float = 0.1,
        betas: tuple[float, float] = (0.9, 0.99),
        warmup_steps: int = 100,
        decay_steps: int = 2000,
        min_lr_ratio: float = 0.1,
        optimizer: str = "adamw",
        schedule: str = "cosine",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.optimizer_settings = pick(OptimizerSettings, self.hparams)
        try:
            from transformers import LlamaConfig, LlamaForCausalLM
        except ImportError as err:
            raise ImportError("model=llama needs transformers: pip install 'lightning_hybrid[export]'") from err
        config = LlamaConfig(
            vocab_size=vocab_size,
            max_position_embeddings=block_size,
            hidden_size=hidden_size,
            intermediate_size=intermediate_size,
            num_hidden_layers=num_hidden_layers,
            num_attention_heads=num_attention_heads,
            num_key_value_heads=num_key_value_heads,
            rms_norm_eps=rms_norm_eps,
            rope_theta=rope_theta,
            tie_word_embeddings=tie_word_embeddings,
            bos_token_id=None,
            eos_token_id=None,
            pad_token_id=None,
        )
        self.model = LlamaForCausalLM(config)

    @override
    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=idx).logits
