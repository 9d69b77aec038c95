"""Char-level LM distillation on tinyshakespeare: an fp32 teacher trained by the main job, and ternary
students of the same shape trained for the same steps, with and without it.

    python benchmarks/distill_char.py --data ../shared/data/tinyshakespeare.txt          # about 25 min, 2 cores

Every run is the main job (`python -m lightning_hybrid.train experiment=nanogpt_cpu ...`, nanoGPT's CPU
configuration, 2000 steps, base LR --lr) in its own directory under --work:
  * teacher:          quant=fp32
  * scratch:          ternary from random initialisation (the usual QAT run)
  * copy:             ternary, started from the teacher's weights (init_from), its own loss only
  * copy + distill:   the same plus distill=teacher (KL to the teacher's logits, T = 2, weights 1 and 1)
  * copy + distill + hybrid: the same with callbacks=hybrid (AuxLRController and TrustRegion)
Students run --seeds seeds each, --jobs at a time (one thread each). Finished runs are reused.
Writes results/distill/char.csv and char.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
VARIANTS = {
    "scratch": [],
    "copy": ["init_from={teacher}"],
    "copy + distill": ["init_from={teacher}", "distill=teacher", "distill.teacher_run={teacher}"],
    "copy + distill + hybrid": [
        "init_from={teacher}",
        "distill=teacher",
        "distill.teacher_run={teacher}",
        "callbacks=hybrid",
    ],
}


def run(run_dir: Path, overrides: list[str], args) -> dict:
    summary = run_dir / "summary.json"
    if not summary.is_file():
        cmd = [
            sys.executable,
            "-m",
            "lightning_hybrid.train",
            "experiment=nanogpt_cpu",
            f"data.path={args.data}",
            f"model.lr={args.lr}",
            f"trainer.max_steps={args.steps}",
            f"hydra.run.dir={run_dir}",
            *overrides,
        ]
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        with open(run_dir.parent / f"{run_dir.name}.log", "w") as log:
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, env=env)
    return json.loads(summary.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--work", type=Path, default=HERE / "results/distill/work/char")
    parser.add_argument("--out", type=Path, default=HERE / "results/distill")
    args = parser.parse_args()
    teacher_dir = (args.work / "teacher").resolve()
    teacher = run(teacher_dir, ["quant=fp32", "seed=0"], args)
    jobs = [(name, seed) for name in VARIANTS for seed in args.seeds]

    def student(job):
        name, seed = job
        overrides = [o.format(teacher=teacher_dir) for o in VARIANTS[name]] + [f"seed={seed}"]
        return name, seed, run(args.work / name.replace(" + ", "_") / f"seed{seed}", overrides, args)

    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(student, jobs))
    write(teacher, results, args)


def write(teacher: dict, results: list, args) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [{"variant": "teacher (fp32)", "seed": 0, "val_loss": teacher["val_loss"], "file_bytes": ""}]
    rows += [
        {"variant": n, "seed": s, "val_loss": r["val_loss"], "file_bytes": r.get("file_bytes", "")}
        for n, s, r in results
    ]
    with open(args.out / "char.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        f"tinyshakespeare, nanoGPT CPU configuration, {args.steps} steps, base LR {args.lr}, seeds {args.seeds}",
        "",
    ]
    lines += ["| student | final val loss (mean ± std) | per seed | packed file |", "|---|---|---|---|"]
    lines.append(f"| teacher (fp32) | {teacher['val_loss']:.3f} | | |")
    for name in VARIANTS:
        losses = [r["val_loss"] for n, _, r in results if n == name]
        size = next(r.get("file_bytes", "") for n, _, r in results if n == name)
        spread = statistics.stdev(losses) if len(losses) > 1 else 0.0
        per_seed = ", ".join(f"{v:.3f}" for v in losses)
        lines.append(f"| {name} | {statistics.mean(losses):.3f} ± {spread:.3f} | {per_seed} | {size:,} B |")
    (args.out / "char.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
