"""Mixed-precision plans from a trained full-precision model: train the nanoGPT CPU configuration in fp32,
then let PrecisionAllocator measure each layer's sensitivity on held-out batches and write one plan per
average-bit budget (JSON + Markdown table). The QAT runs of `benchmark=precision` train from scratch
with these plans (quant=planned quant.plan=<file>).

    python benchmarks/precision_plans.py --data ../shared/data/tinyshakespeare.txt \\
        --out benchmarks/results/precision/plans --budgets 2.0 1.58
"""

from __future__ import annotations

import argparse
from pathlib import Path

import lightning.pytorch as pl
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from lightning_hybrid import PrecisionAllocator
from lightning_hybrid.callbacks._plan import step_loss
from lightning_hybrid.jobs.configs import config_dir
from lightning_hybrid.quant.convert import selected_linears


def trained_fp32(data: str, steps: int, lr: float, seed: int) -> tuple[pl.LightningModule, list]:
    overrides = [
        "experiment=nanogpt_cpu",
        "quant=fp32",
        f"data.path={data}",
        f"model.lr={lr}",
        f"trainer.max_steps={steps}",
    ]
    with initialize_config_dir(config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    pl.seed_everything(seed)
    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model, vocab_size=datamodule.vocab_size)
    trainer = pl.Trainer(
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        limit_val_batches=0,
        gradient_clip_val=cfg.trainer.gradient_clip_val,
    )
    trainer.fit(model, datamodule)
    val = list(datamodule.val_dataloader())
    return model, val


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="tinyshakespeare.txt")
    parser.add_argument("--out", type=Path, required=True, help="directory for plan_<budget>.json")
    parser.add_argument("--budgets", type=float, nargs="+", default=[2.0, 1.58])
    parser.add_argument("--steps", type=int, default=2000, help="fp32 training steps before measuring")
    parser.add_argument("--lr", type=float, default=3e-3, help="fp32 base LR (the best one in benchmark=full)")
    parser.add_argument("--batches", type=int, default=8, help="held-out batches the loss is measured on")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, val = trained_fp32(args.data, args.steps, args.lr, args.seed)
    layers = selected_linears(model)
    args.out.mkdir(parents=True, exist_ok=True)
    for budget in args.budgets:
        allocator = PrecisionAllocator(average_bits=budget, num_batches=args.batches, seed=args.seed)
        plan = allocator.allocate(model, layers, val, step_loss)
        path = args.out / f"plan_{budget:g}.json"
        plan.save(path)
        print(f"{path}:\n{plan.table()}\n", flush=True)


if __name__ == "__main__":
    main()
