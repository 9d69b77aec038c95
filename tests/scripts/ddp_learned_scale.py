"""2-process CPU DDP run with LearnedScale on a ternary GPT; each rank saves its final weights and the
scale after every step, for comparison across ranks.

Run as a script: strategy="ddp" relaunches sys.argv in every process, which pytest cannot be.
    python tests/scripts/ddp_learned_scale.py OUT_DIR [HELDOUT_EVERY]
"""

import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
from _ddp import two_process_trainer

from lightning_hybrid import LearnedScale, TernaryQAT
from lightning_hybrid.data import TextDataModule
from lightning_hybrid.models import LanguageModel


class ScaleHistory(pl.Callback):
    def __init__(self) -> None:
        self.scales: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        scale = next(c for c in trainer.callbacks if isinstance(c, LearnedScale))
        self.scales.append(float(scale.tuner.scale))


def main(out: Path, heldout_every: int) -> None:
    torch.set_num_threads(1)
    pl.seed_everything(0)
    # the stdlib source; with held-out batches a text so short that an epoch is 7 steps (they start in the
    # second): 96 training bytes, the last 24-byte chunk held out
    held = {"max_bytes": 120, "val_fraction": 0.2, "heldout_fraction": 0.25, "heldout_chunk": 24}
    size = held if heldout_every else {"max_bytes": 100_000}
    data = TextDataModule(block_size=16, batch_size=4, **size)
    model = LanguageModel(vocab_size=data.vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=32, warmup_steps=2)
    history = ScaleHistory()
    callbacks = [TernaryQAT(), LearnedScale(heldout_every=heldout_every), history]
    trainer = two_process_trainer(max_steps=16, gradient_clip_val=1.0, callbacks=callbacks)
    trainer.fit(model, data)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    state["_scales"] = torch.tensor(history.scales, dtype=torch.float64)
    torch.save(state, out / f"rank{trainer.global_rank}.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 0)
