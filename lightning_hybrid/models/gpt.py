"""A small decoder-only transformer (GPT-2 shape, pre-norm).

Sized by default like nanoGPT's CPU configuration for shakespeare_char (4 layers, 4 heads, 128 wide,
context 64), the sanity anchor for the benchmarks.

Defaults measured on that configuration (benchmarks/README.md, "Reference models"): PyTorch's own layer
initialisation, a separate output head and biases train to a lower val loss than GPT-2's N(0, 0.02)
init, a head tied to the embedding and no biases, in fp32 and more so in ternary.
`init="gpt2", tie_head=True, bias=False` is the earlier model, kept for comparison.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lightning_hybrid.utils.checks import choice, number, positive_int

INITS = ("torch", "gpt2")
# The GPTConfig fields that the earlier model had fixed, at the values it had: a saved config without
# them describes that model.
EARLIER_MODEL = {"init": "gpt2", "tie_head": True, "bias": False}


@dataclass
class GPTConfig:
    """The transformer's sizes; `dropout` applies to attention, residual and embedding outputs.

    `init`: "torch" keeps PyTorch's defaults (Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)); Embedding:
    N(0, 1)); "gpt2" draws every Linear and Embedding from N(0, 0.02) and the residual projections from
    N(0, 0.02 / sqrt(2 n_layer)). `tie_head` shares the output head's weight with the token embedding.
    `bias` adds biases to the Linear layers (not the head) and the LayerNorms."""

    vocab_size: int = 256
    block_size: int = 64
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    init: str = "torch"
    tie_head: bool = False
    bias: bool = True

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            positive_int(name, getattr(self, name))
        if self.n_embd % self.n_head:
            raise ValueError(f"`n_embd` ({self.n_embd}) must be divisible by `n_head` ({self.n_head}).")
        number("dropout", self.dropout, 0, 1, open_high=True)
        choice("init", self.init, INITS)
        for name in ("tie_head", "bias"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"`{name}` must be True or False, got {getattr(self, name)!r}.")


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_head, self.dropout = cfg.n_head, cfg.dropout
        self.qkv = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.n_head, c // self.n_head).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(y.transpose(1, 2).reshape(b, t, c))


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias), nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn, self.mlp = CausalSelfAttention(cfg), MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


def _normal_002(module: nn.Module) -> None:
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.pos_emb = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        if cfg.tie_head:
            self.lm_head.weight = self.tok_emb.weight  # weight tying (Press & Wolf 2017), as GPT-2
        if cfg.init == "gpt2":
            self._gpt2_init()

    def _gpt2_init(self) -> None:
        self.apply(_normal_002)  # in apply's order, so that a seed draws the earlier model's weights
        # GPT-2's scaled init of residual projections: std 0.02 / sqrt(2 * n_layer).
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * self.cfg.n_layer))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]
        if t > self.cfg.block_size:
            raise ValueError(f"sequence length {t} exceeds block_size {self.cfg.block_size}.")
        pos = torch.arange(t, device=idx.device)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(pos))
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))
