"""all-MiniLM-L6-v2 distilled into its ternary copy on the standard library's docstring sentences.

    python benchmarks/minilm_students.py            # about 55 min on 2 cores (needs the teacher extra)

Every run is `python -m lightning_hybrid.distill_minilm` in its own directory under --work:
  * ternary copy, no training: trainer.max_steps=0 (post-training quantization of the teacher), and the
    same with the non-quantized tensors (the embedding table) stored in bf16: export_float_dtype=bf16
  * ternary copy + distillation: --steps steps of 1 - cosine to the teacher's embeddings, AdamW + cosine
  * ternary copy + distillation + hybrid: the same with callbacks=hybrid (AuxLRController, TrustRegion)
  * ternary copy + distillation, bf16 export: the distilled student measured and written with its
    non-quantized tensors in bf16
The held-out (mean cosine) and retrieval (top-1 agreement) sentences are the same for every run
(corpus.split_seed); trained variants run --seeds seeds each, --jobs at a time, one thread each.
Finished runs are reused. Writes results/distill/minilm.csv and minilm.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
VARIANTS = {  # name: (work directory, overrides, trained: one run a seed)
    "ternary copy, no training": ("no_training", ["trainer.max_steps=0"], False),
    "the same, non-quantized tensors stored in bf16": (
        "no_training_bf16",
        ["trainer.max_steps=0", "export_float_dtype=bf16"],
        False,
    ),
    "ternary copy + distillation": ("ternary_copy_distillation", [], True),
    "ternary copy + distillation + hybrid": ("ternary_copy_distillation_hybrid", ["callbacks=hybrid"], True),
    "ternary copy + distillation, bf16 export": ("ternary_copy_distillation_bf16", ["export_float_dtype=bf16"], True),
}


def run(run_dir: Path, overrides: list[str], args) -> dict:
    summary = run_dir / "summary.json"
    if not summary.is_file():
        cmd = [
            sys.executable,
            "-m",
            "lightning_hybrid.distill_minilm",
            f"trainer.max_steps={args.steps}",
            f"model.lr={args.lr}",
            f"hydra.run.dir={run_dir}",
            *overrides,
        ]
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        start = time.time()
        with open(run_dir.parent / f"{run_dir.name}.log", "w") as log:
            subprocess.run(
                cmd, check=True, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"}
            )
        result = json.loads(summary.read_text())
        result["wall_s"] = round(time.time() - start)
        summary.write_text(json.dumps(result, indent=2) + "\n")
    return json.loads(summary.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--work", type=Path, default=HERE / "results/distill/work/minilm")
    parser.add_argument("--out", type=Path, default=HERE / "results/distill")
    args = parser.parse_args()
    jobs = [
        (name, seed)
        for name, (_, _, trained) in VARIANTS.items()
        for seed in (args.seeds if trained else args.seeds[:1])
    ]

    def one(job):
        name, seed = job
        folder, overrides, trained = VARIANTS[name]
        directory = args.work / folder / f"seed{seed}" if trained else args.work / folder
        return name, seed, run(directory, [*overrides, f"seed={seed}"], args)

    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(one, jobs))
    write(results, args)


def write(results: list, args) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    fields = ["variant", "seed", "steps", "mean_cosine", "top1_agreement", "file_bytes", "wall_s"]
    with open(args.out / "minilm.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({"variant": n, "seed": s, **r} for n, s, r in results)
    first = results[0][2]
    n = first["sentences"]
    lines = [
        f"all-MiniLM-L6-v2 -> ternary copy; stdlib docstring sentences ({n['train']} training, "
        f"{n['held_out']} held-out, {n['retrieval']} retrieval); {args.steps} steps of batch 32, LR {args.lr}; "
        f"seeds {args.seeds}; "
        f"{args.jobs} runs at a time, one thread each",
        "",
        "| model | mean cosine to teacher (held-out) | top-1 retrieval agreement | per seed (cosine / agreement) "
        "| on disk | wall time a run |",
        "|---|---|---|---|---|---|",
        f"| teacher (fp32) | 1 | 1 | | {first['teacher_fp32_bytes']:,} B (fp32 tensors) | |",
    ]
    for name in VARIANTS:
        runs = [r for v, _, r in results if v == name]
        cos, agree = [r["mean_cosine"] for r in runs], [r["top1_agreement"] for r in runs]
        per_seed = ", ".join(f"{c:.4f} / {a:.3f}" for c, a in zip(cos, agree))
        wall = statistics.mean(r["wall_s"] for r in runs)
        lines.append(
            f"| {name} | {_mean(cos, 4)} | {_mean(agree, 3)} | {per_seed} "
            f"| {runs[0]['file_bytes']:,} B (packed) | {wall:.0f} s |"
        )
    (args.out / "minilm.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _mean(values: list[float], digits: int) -> str:
    spread = f" ± {statistics.stdev(values):.{digits}f}" if len(values) > 1 else ""
    return f"{statistics.mean(values):.{digits}f}{spread}"


if __name__ == "__main__":
    main()
