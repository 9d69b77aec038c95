"""Trace what the hybrid-optimizer callbacks do inside one run: every 20 steps the train loss, the LR
in effect, the controller's multiplier and hypergradient EMA, and the trust region's radius, last
window ratio and activation rate. Writes a CSV; diagnosis, not a benchmark.

    python benchmarks/hybrid_probe.py --data ../shared/data/tinyshakespeare.txt --lr 1e-2 --steps 600 \\
        --out benchmarks/results/probe/greedy_lr1e-2.csv callbacks=hybrid callbacks.aux_lr.signal=greedy
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import lightning.pytorch as pl
import torch
from hydra import compose, initialize_config_dir

from lightning_hybrid import AuxLRController, TrustRegion
from lightning_hybrid.jobs.configs import config_dir
from lightning_hybrid.jobs.train import train

FIELDS = ["step", "train_loss", "lr", "multiplier", "hypergradient_ema", "radius", "window_ratio", "activation_rate"]


class Probe(pl.Callback):
    def __init__(self, every: int = 20) -> None:
        self.every, self.rows = every, []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step % self.every:
            return
        aux = next((c for c in trainer.callbacks if isinstance(c, AuxLRController)), None)
        tr = next((c for c in trainer.callbacks if isinstance(c, TrustRegion)), None)
        row = {
            "step": trainer.global_step,
            "train_loss": round(float(outputs["loss"]), 4),
            "lr": trainer.optimizers[0].param_groups[0]["lr"],
        }
        if aux is not None:
            row.update(multiplier=round(aux.learner.multiplier, 4), hypergradient_ema=round(aux.signals.hyper_ema, 5))
        if tr is not None:
            row.update(
                radius=tr.core.effective_radius(),
                window_ratio=tr.core.ratio,
                activation_rate=round(tr.active_rate(), 4),
            )
        self.rows.append(row)
        print(row, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="tinyshakespeare.txt")
    parser.add_argument("--lr", type=float, required=True, help="base LR")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--out", type=Path, required=True, help="CSV to write")
    parser.add_argument("overrides", nargs="*", help="main-job overrides, e.g. callbacks=hybrid")
    args = parser.parse_intermixed_args()
    torch.set_num_threads(1)
    overrides = [
        "experiment=nanogpt_cpu",
        "quant=ternary",
        f"data.path={args.data}",
        f"model.lr={args.lr}",
        f"trainer.max_steps={args.steps}",
        f"trainer.val_check_interval={args.steps}",
        "callbacks.progress_bar=null",
        "callbacks.checkpoint=null",
        "+trainer.enable_progress_bar=false",
        "+trainer.enable_checkpointing=false",
        *args.overrides,
    ]
    probe = Probe()
    with initialize_config_dir(config_dir(), version_base="1.3"):
        summary = train(compose("train", overrides=overrides), args.out.with_suffix(""), extra_callbacks=[probe])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(probe.rows)
    print(f"final val loss {summary['val_loss']}; trace in {args.out}")


if __name__ == "__main__":
    main()
