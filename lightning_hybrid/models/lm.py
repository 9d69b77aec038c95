"""LanguageModel: a LightningModule around GPT with AdamW, linear warm-up and cosine decay."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from typing_extensions import override

from lightning_hybrid.models.gpt import GPT, GPTConfig
from lightning_hybrid.models.supervised import SupervisedModule
from lightning_hybrid.optim import OptimizerSettings
from lightning_hybrid.utils.settings import pick


class NextTokenModule(SupervisedModule):
    """A SupervisedModule whose forward maps token ids to logits and whose loss is next-token cross-entropy
    (computed in fp32, whatever the logits' dtype)."""

    def _loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), y.reshape(-1))


class LanguageModel(NextTokenModule):
    """Next-token language model. Defaults follow nanoGPT's shakespeare_char recipe (AdamW, betas
    (0.9, 0.99), weight decay 0.1 on matrices, 100 warm-up steps, cosine to lr / 10).

    The model arguments are GPTConfig's (`init`, `tie_head` and `bias` shape the initialisation, the head
    and the biases); lr, weight_decay, betas, warmup_steps, decay_steps, min_lr_ratio, optimizer and
    schedule are lightning_hybrid.optim.OptimizerSettings'. They stay flat arguments so that they are the
    module's hyperparameters (checkpoints, `model.lr=...` in Hydra).
    """

    def __init__(
        self,
        vocab_size: int = 256,
        block_size: int = 64,
        n_layer: int = 4,
        n_head: int = 4,
        n_embd: int = 128,
        dropout: float = 0.0,
        init: str = "torch",
        tie_head: bool = False,
        bias: bool = True,
        lr: float = 1e-3,
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
        self.model = GPT(pick(GPTConfig, self.hparams))

    @override
    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.model(idx)
