"""`python -m lightning_hybrid.evaluate run=<run dir> data.path=<text>`: a finished run's packed model on
any text, with the run's own data settings (tokenizer, block size, held-out windows): val loss in nats per
token and bits per byte of the text."""

from __future__ import annotations

import math

import hydra
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from lightning_hybrid.data.corpora import read_bytes
from lightning_hybrid.jobs.configs import config_dir
from lightning_hybrid.jobs.errors import reported
from lightning_hybrid.jobs.packed_run import packed_model


@torch.no_grad()
def val_loss(model: torch.nn.Module, loader) -> float:
    """The mean next-token cross-entropy over every position of the loader's windows."""
    total, count = 0.0, 0
    for x, y in loader:
        logits = model(x).float()
        total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum"))
        count += y.numel()
    return total / count


def evaluate(cfg: DictConfig) -> dict[str, float | str]:
    """{"val_loss", "bits_per_byte", "text"} of the run's packed model on `data.path` (null: its own text)."""
    model, run_cfg, tokenizer = packed_model(cfg.run)
    data = run_cfg.data
    with open_dict(data):
        for key, value in (cfg.get("data") or {}).items():
            if value is not None:
                data[key] = value
    datamodule = instantiate(data)
    if tokenizer.kind == "char" and datamodule.vocab_size != tokenizer.vocab_size:
        raise ValueError(f"`data.path`={data.path!r} has another alphabet than the run's char tokenizer.")
    datamodule.setup("validate")
    loss = val_loss(model, datamodule.val_dataloader())
    raw = read_bytes(data.get("path"), data.get("max_bytes"), encoding=data.get("encoding", "utf-8"))
    bytes_per_token = 1.0 if tokenizer.kind == "byte" else len(raw) / len(raw.decode("utf-8"))
    text = data.path or "the Python standard library's source"
    return {"val_loss": round(loss, 4), "bits_per_byte": round(loss / math.log(2) / bytes_per_token, 4), "text": text}


@hydra.main(config_path=config_dir(), config_name="evaluate", version_base="1.3")
def main(cfg: DictConfig) -> None:
    def run() -> None:
        result = evaluate(cfg)
        print(
            f"val loss {result['val_loss']} nats per token, {result['bits_per_byte']} bits per byte on {result['text']}"
        )
        print(OmegaConf.to_yaml(OmegaConf.create(result)), end="")

    reported(run)
