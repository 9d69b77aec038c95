"""2-process CPU DDP TernGrad run saved to a checkpoint (PHASE=save) or resumed from it (PHASE=resume);
each rank writes its TernGrad residuals and random-stream state after the save or after the restore.

Run as a script: strategy="ddp" relaunches sys.argv in every process, which pytest cannot be.
    python tests/scripts/ddp_terngrad_resume.py PHASE OUT_DIR
"""

import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
from _ddp import two_process_trainer

from lightning_hybrid import GradientCompression
from lightning_hybrid.data import TextDataModule
from lightning_hybrid.models import LanguageModel


def memory(compression: GradientCompression) -> dict:
    state = {f"residual.{i}": r.clone() for i, r in compression.state.residuals.items()}
    state.update({f"generator.{d.type}": g.get_state() for d, g in compression.state._generators.items()})
    return state


class AfterRestore(pl.Callback):
    """Records the compression's memory at the start of the resumed fit (after the restore)."""

    def __init__(self, compression: GradientCompression, path: Path) -> None:
        self.compression, self.path = compression, path

    def on_fit_start(self, trainer, pl_module):
        torch.save(memory(self.compression), self.path / f"restored_rank{trainer.global_rank}.pt")


def main(phase: str, out: Path) -> None:
    torch.set_num_threads(1)
    pl.seed_everything(0)
    data = TextDataModule(max_bytes=100_000, block_size=16, batch_size=4)  # the stdlib source
    model = LanguageModel(vocab_size=data.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=32, warmup_steps=2)
    compression = GradientCompression("terngrad", seed=0)
    callbacks = [compression] + ([AfterRestore(compression, out)] if phase == "resume" else [])
    trainer = two_process_trainer(max_steps=3, callbacks=callbacks)
    if phase == "save":
        trainer.fit(model, data)
        trainer.save_checkpoint(out / "terngrad.ckpt")
        torch.save(memory(compression), out / f"saved_rank{trainer.global_rank}.pt")
    else:
        trainer.fit(model, data, ckpt_path=out / "terngrad.ckpt")


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
