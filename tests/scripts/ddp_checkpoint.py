"""2-process CPU DDP runs with LastCheckpoint: a run stopped by an agreed Ctrl-C, then resumed, against
the uninterrupted run; each rank saves its final weights and the batches it saw.

Run as a script: strategy="ddp" relaunches sys.argv in every process, which pytest cannot be.
    python tests/scripts/ddp_checkpoint.py PHASE OUT_DIR    (PHASE: full, cut or resume)
"""

import contextlib
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
from _ddp import two_process_trainer

from lightning_hybrid import LastCheckpoint, TernaryQAT
from lightning_hybrid.callbacks.checkpoint import STOP_CHECK_EVERY, RunStopped
from lightning_hybrid.data import TextDataModule
from lightning_hybrid.models import LanguageModel

STEPS = 16


class AskToStop(pl.Callback):
    """What a Ctrl-C does to one rank's LastCheckpoint (rank 0's only, so the ranks must agree)."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == STOP_CHECK_EVERY - 3 and trainer.global_rank == 0:
            next(c for c in trainer.callbacks if isinstance(c, LastCheckpoint))._stop_requested = True


class Batches(pl.Callback):
    def __init__(self) -> None:
        self.seen: list[torch.Tensor] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen.append(batch[0][:, 0].clone())


def main(phase: str, out: Path) -> None:
    torch.set_num_threads(1)
    pl.seed_everything(0)
    data = TextDataModule(max_bytes=100_000, block_size=16, batch_size=4)  # the stdlib source
    model = LanguageModel(vocab_size=data.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=32, warmup_steps=2)
    keeper, batches = LastCheckpoint(out / phase, every_n_steps=4), Batches()
    callbacks = [TernaryQAT(warmup_steps=6), keeper, batches] + ([AskToStop()] if phase == "cut" else [])
    trainer = two_process_trainer(max_steps=STEPS, callbacks=callbacks, enable_checkpointing=True)
    ckpt = out / "cut" / "last.ckpt" if phase == "resume" else None
    with contextlib.suppress(RunStopped):  # the cut run stops so
        trainer.fit(model, data, ckpt_path=ckpt)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    state["_step"] = torch.tensor(trainer.global_step)
    state["_batches"] = torch.stack(batches.seen)
    torch.save(state, out / f"{phase}{trainer.global_rank}.pt")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
