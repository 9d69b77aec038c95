"""`python -m lightning_hybrid.generate run=<run dir> prompt="def "`: text from a finished run's packed model
(its PackedBitLinear layers, the way the exported model runs), sampled with temperature and top-k from a
seed; a transformers model generates with its KV cache while the text fits its context."""

from __future__ import annotations

import hydra
import torch
from omegaconf import DictConfig
from torch import nn

from lightning_hybrid.jobs.configs import config_dir
from lightning_hybrid.jobs.errors import reported
from lightning_hybrid.jobs.packed_run import next_token_logits, packed_model
from lightning_hybrid.utils.checks import non_negative, non_negative_int, positive_int


def pick(logits: torch.Tensor, temperature: float, top_k: int | None, generator: torch.Generator) -> torch.Tensor:
    """The next token (1, 1): the argmax at temperature 0, else a draw from the top_k softmax."""
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / temperature
    if top_k:
        floor = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]
        logits = logits.masked_fill(logits < floor, float("-inf"))
    return torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=generator)


def sample(model: nn.Module, prompt: list[int], new_tokens: int, context: int, temperature: float, top_k, seed: int):
    """`new_tokens` token ids after `prompt`, the model seeing at most its last `context` tokens."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.tensor([prompt])
    for _ in range(new_tokens):
        ids = torch.cat([ids, pick(next_token_logits(model, ids[:, -context:]), temperature, top_k, generator)], 1)
    return ids[0, len(prompt) :].tolist()


@torch.no_grad()
def sample_with_cache(model: nn.Module, prompt: list[int], new_tokens: int, temperature: float, top_k, seed: int):
    """The same through transformers' generate and its KV cache (a model=llama run)."""
    torch.manual_seed(seed)
    kwargs = {"do_sample": False} if temperature == 0 else {"do_sample": True, "temperature": temperature}
    if temperature and top_k:
        kwargs["top_k"] = top_k
    out = model.model.generate(torch.tensor([prompt]), max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kwargs)
    return out[0, len(prompt) :].tolist()


def generate(cfg: DictConfig) -> str:
    """The prompt and its continuation, as text."""
    new_tokens = positive_int("max_new_tokens", cfg.max_new_tokens)
    temperature = non_negative("temperature", cfg.temperature)
    top_k = None if cfg.get("top_k") is None else non_negative_int("top_k", cfg.top_k)
    if not cfg.prompt:
        raise ValueError("`prompt` is empty: give the text to continue, e.g. prompt='def '.")
    model, run_cfg, tokenizer = packed_model(cfg.run)
    prompt, context = tokenizer.encode(cfg.prompt), int(run_cfg.data.block_size)
    if hasattr(getattr(model, "model", None), "generate") and len(prompt) + new_tokens <= context:
        ids = sample_with_cache(model, prompt, new_tokens, temperature, top_k, cfg.seed)
    else:
        ids = sample(model, prompt, new_tokens, context, temperature, top_k, cfg.seed)
    return cfg.prompt + tokenizer.decode(ids)


@hydra.main(config_path=config_dir(), config_name="generate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    reported(lambda: print(generate(cfg)))
