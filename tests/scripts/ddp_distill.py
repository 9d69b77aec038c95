"""2-process CPU DDP run of Distillation into a ternary student; each rank saves its student and teacher.

Run as a script: strategy="ddp" relaunches sys.argv in every process, which pytest cannot be.
    python tests/scripts/ddp_distill.py OUT_DIR
"""

import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
from _ddp import two_process_trainer

from lightning_hybrid import Distillation, TernaryQAT
from lightning_hybrid.data import TextDataModule
from lightning_hybrid.models import LanguageModel


def main(out: Path) -> None:
    torch.set_num_threads(1)
    pl.seed_everything(0)
    data = TextDataModule(max_bytes=100_000, block_size=16, batch_size=4)  # the stdlib source
    sizes = {"vocab_size": data.vocab_size, "block_size": 16, "n_layer": 1, "n_head": 2, "n_embd": 32}
    teacher, student = LanguageModel(**sizes), LanguageModel(**sizes, warmup_steps=2)
    student.load_state_dict(teacher.state_dict())
    before = {f"teacher_before.{k}": v.clone() for k, v in teacher.state_dict().items()}
    distill = Distillation(student, teacher, hidden_weight=1.0, hidden_pairs={"model.blocks.0": "model.blocks.0"})
    trainer = two_process_trainer(
        max_steps=6,
        callbacks=[TernaryQAT(warmup_steps=2)],
    )
    trainer.fit(distill, data)
    state = {f"student.{k}": v.detach().clone() for k, v in student.state_dict().items()}
    state.update({f"teacher.{k}": v.detach().clone() for k, v in teacher.state_dict().items()})
    state.update(before)
    state["_kl"] = trainer.callback_metrics["distill/kl"].detach().clone()
    torch.save(state, out / f"rank{trainer.global_rank}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
