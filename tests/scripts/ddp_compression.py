"""2-process CPU DDP run with GradientCompression(METHOD); each rank saves its weights and counters.

Run as a script: strategy="ddp" relaunches sys.argv in every process, which pytest cannot be.
    python tests/scripts/ddp_compression.py METHOD[:WIRE[:SCALE_PER]] OUT_DIR   (terngrad:2bit, terngrad:int8:parameter)
"""

import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
from _ddp import two_process_trainer

from lightning_hybrid import GradientCompression
from lightning_hybrid.data import TextDataModule
from lightning_hybrid.models import LanguageModel


def main(method: str, out: Path) -> None:
    torch.set_num_threads(1)
    pl.seed_everything(0)
    data = TextDataModule(max_bytes=100_000, block_size=16, batch_size=4)  # the stdlib source
    model = LanguageModel(vocab_size=data.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=32, warmup_steps=2)
    method, wire, scale_per = (method.split(":") + ["int8", "bucket"][method.count(":") :])[:3]
    compression = GradientCompression(method, seed=0, wire=wire, scale_per=scale_per)
    trainer = two_process_trainer(
        max_steps=6,
        callbacks=[compression],
    )
    trainer.fit(model, data)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    state["_bytes"] = torch.tensor(compression.state.bytes_sent)
    state["_steps"] = torch.tensor(trainer.global_step)
    state["_grad_numel"] = torch.tensor(sum(p.numel() for p in model.parameters() if p.requires_grad))
    state["_grad_tensors"] = torch.tensor(sum(1 for p in model.parameters() if p.requires_grad))
    state["_loss"] = trainer.callback_metrics["train_loss"].detach().clone()
    out.mkdir(parents=True, exist_ok=True)
    torch.save(state, out / f"rank{trainer.global_rank}.pt")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
