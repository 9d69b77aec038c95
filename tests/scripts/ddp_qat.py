"""2-process CPU DDP run with TernaryQAT; each rank saves its final weights for comparison.

Run as a script: strategy="ddp" relaunches sys.argv in every process, which pytest cannot be.
    python tests/scripts/ddp_qat.py OUT_DIR
"""

import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
from _ddp import two_process_trainer

from lightning_hybrid import TernaryQAT
from lightning_hybrid.data import TextDataModule
from lightning_hybrid.models import LanguageModel
from lightning_hybrid.quant import bit_linears


def main(out: Path) -> None:
    torch.set_num_threads(1)
    pl.seed_everything(0)
    data = TextDataModule(max_bytes=100_000, block_size=16, batch_size=4)  # the stdlib source
    model = LanguageModel(vocab_size=data.vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=32, warmup_steps=2)
    trainer = two_process_trainer(
        max_steps=8,
        callbacks=[TernaryQAT(warmup_steps=4)],
    )
    trainer.fit(model, data)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    state["_converted"] = torch.tensor(len(bit_linears(model)))
    state["_lambda"] = torch.tensor(next(iter(bit_linears(model).values())).quant_lambda)
    torch.save(state, out / f"rank{trainer.global_rank}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
