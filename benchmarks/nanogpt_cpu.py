"""fp32 vs ternary vs binary on tinyshakespeare, nanoGPT's CPU configuration.

nanoGPT's shakespeare_char CPU run: 4 layers, 4 heads, 128 wide, block 64, batch 12, 2000 steps,
AdamW (betas 0.9/0.99, weight decay 0.1), 100 warm-up steps, cosine decay to lr/10, no dropout.
nanoGPT reports val loss ~1.88 for it at lr 1e-3 (fp32).

    python benchmarks/nanogpt_cpu.py --data ../shared/data/tinyshakespeare.txt

Each finished run is appended to the CSV at once; a rerun skips the runs already there, so an
interrupted grid resumes. The markdown table is rewritten from the CSV at the end.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from safetensors.torch import save_file

from lightning_hybrid import TernaryQAT, save_packed
from lightning_hybrid.data import TextDataModule
from lightning_hybrid.harness.recorder import RunRecorder
from lightning_hybrid.models import LanguageModel

BITS = {"fp32": None, "ternary": 1.58, "binary": 1}
FIELDS = [
    "variant",
    "lr",
    "seed",
    "steps",
    "final_val_loss",
    "final_train_loss",
    "ms_per_step",
    "file_bytes",
    "file_bytes_base3",
    "wall_s",
]
HERE = Path(__file__).parent


def fp32_file_bytes(model: torch.nn.Module) -> int:
    state, seen = {}, set()
    for k, v in model.state_dict().items():
        if v.data_ptr() not in seen:
            seen.add(v.data_ptr())
            state[k] = v.contiguous().clone()
    with tempfile.TemporaryDirectory() as d:
        save_file(state, f"{d}/m.safetensors")
        return os.path.getsize(f"{d}/m.safetensors")


def packed_bytes(model: torch.nn.Module) -> tuple[int, int]:
    with tempfile.TemporaryDirectory() as d:
        return save_packed(model, f"{d}/a", layout="2bit").file_bytes, save_packed(
            model, f"{d}/b", layout="base3"
        ).file_bytes


def run(variant: str, lr: float, seed: int, args) -> dict:
    pl.seed_everything(seed, workers=True)
    dm = TextDataModule(path=args.data, tokenizer="char", block_size=64, batch_size=12, max_bytes=None)
    model = LanguageModel(vocab_size=dm.vocab_size, block_size=64, lr=lr, decay_steps=args.steps)
    recorder = RunRecorder(log_every=args.eval_every)
    callbacks = [recorder] + ([TernaryQAT(bits=BITS[variant])] if BITS[variant] else [])
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=args.steps,
        val_check_interval=args.eval_every,
        check_val_every_n_epoch=None,
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        deterministic=True,
    )
    t0 = time.perf_counter()
    trainer.fit(model, dm)
    wall = time.perf_counter() - t0
    train_loss = float(trainer.callback_metrics["train_loss"])
    val = trainer.validate(model, dm, verbose=False)[0]["val_loss"]
    sizes = packed_bytes(model) if BITS[variant] else (fp32_file_bytes(model), "")
    return {
        "variant": variant,
        "lr": lr,
        "seed": seed,
        "steps": trainer.global_step,
        "final_val_loss": round(val, 4),
        "final_train_loss": round(train_loss, 4),
        "ms_per_step": round(1000 * recorder.as_dict()["median_step_s"], 2),
        "file_bytes": sizes[0],
        "file_bytes_base3": sizes[1],
        "wall_s": round(wall, 1),
    }


def done_runs(path: Path) -> set[tuple[str, float, int]]:
    if not path.exists():
        return set()
    with path.open() as f:
        return {(r["variant"], float(r["lr"]), int(r["seed"])) for r in csv.DictReader(f)}


def write_table(csv_path: Path, md_path: Path, command: str) -> None:
    with csv_path.open() as f:
        rows = list(csv.DictReader(f))
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["variant"], r["lr"]), []).append(r)
    fp32_ms = (
        statistics.mean(float(r["ms_per_step"]) for r in rows if r["variant"] == "fp32")
        if any(r["variant"] == "fp32" for r in rows)
        else None
    )
    lines = [
        "| variant | base LR | seeds | final val loss (mean ± std) | ms/step (median) | step time vs fp32 "
        "| file bytes (2-bit / base-3) |",
        "|---|---|---|---|---|---|---|",
    ]
    for (variant, lr), rs in sorted(groups.items(), key=lambda kv: (list(BITS).index(kv[0][0]), float(kv[0][1]))):
        vals = [float(r["final_val_loss"]) for r in rs]
        ms = statistics.mean(float(r["ms_per_step"]) for r in rs)
        std = statistics.stdev(vals) if len(vals) > 1 else 0.0
        size = rs[0]["file_bytes"] + (
            f" / {rs[0]['file_bytes_base3']}" if rs[0]["file_bytes_base3"] else " (fp32 safetensors)"
        )
        ratio = f"{ms / fp32_ms:.2f}x" if fp32_ms else "n/a"
        lines.append(
            f"| {variant} | {lr} | {len(rs)} | {statistics.mean(vals):.3f} ± {std:.3f} | {ms:.1f} | {ratio} | {size} |"
        )
    machine = (
        f"{platform.machine()}, {os.cpu_count()} CPU cores ({torch.get_num_threads()} torch thread), "
        f"torch {torch.__version__}, lightning {pl.__version__}"
    )
    md_path.write_text(f"Command: `{command}`\n\nMachine: {machine}\n\n" + "\n".join(lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(HERE.parent.parent / "shared/data/tinyshakespeare.txt"))
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-3, 3e-3])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--variants", nargs="+", default=list(BITS), choices=list(BITS))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(HERE / "results/nanogpt_cpu.csv"))
    args = parser.parse_args()
    # One thread: step times stay comparable while the other core does other work; the table reports
    # ratios to fp32 from the same invocation.
    torch.set_num_threads(args.threads)
    csv_path = Path(args.out)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    finished = done_runs(csv_path)
    for seed in args.seeds:
        for lr in args.lrs:
            for variant in args.variants:
                if (variant, lr, seed) in finished:
                    continue
                row = run(variant, lr, seed, args)
                print(row, flush=True)
                new = not csv_path.exists()
                with csv_path.open("a", newline="") as f:
                    writer = csv.DictWriter(f, fieldnames=FIELDS)
                    if new:
                        writer.writeheader()
                    writer.writerow(row)
    write_table(
        csv_path,
        csv_path.with_suffix(".md"),
        "python benchmarks/nanogpt_cpu.py --data ../shared/data/tinyshakespeare.txt",
    )


if __name__ == "__main__":
    main()
