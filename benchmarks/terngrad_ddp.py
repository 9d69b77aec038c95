"""Ternary gradients in 2-process CPU DDP on tinyshakespeare: bytes sent and val loss against fp32 and fp16.

    python benchmarks/terngrad_ddp.py --data ../shared/data/tinyshakespeare.txt     # about 20 min, 2 cores

Each run is the main job on 2 CPU processes (gloo), nanoGPT's CPU configuration with batch 6 a process
(12 in all, as the single-process run), ternary weights, --steps steps, with compression=fp32 (DDP's
all-reduce, counted), fp16 (torch's fp16_compress_hook), and terngrad with one shared scale a parameter
(int8 all-reduce of the codes; and the same codes packed four a byte and all-gathered) or one a DDP
bucket (the default). Finished runs are reused. Writes results/terngrad/ddp.csv
(final val loss, bytes a step per rank) and ddp.md, and val_curves.png.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
METHODS = {  # name: the main job's overrides
    "fp32": ["compression=fp32"],
    "fp16": ["compression=fp16"],
    "terngrad per-parameter scale": ["compression=terngrad", "compression.scale_per=parameter"],  # int8 all-reduce
    "terngrad per-parameter scale, 2-bit wire": [  # codes packed four a byte, all-gathered
        "compression=terngrad",
        "compression.scale_per=parameter",
        "compression.wire=2bit",
    ],
    "terngrad per-bucket scale": ["compression=terngrad", "compression.scale_per=bucket"],  # the default
}


def run(method: str, args) -> Path:
    run_dir = (args.work / method.replace(", ", "_").replace(" ", "_")).resolve()
    if not (run_dir / "summary.json").is_file():
        cmd = [
            sys.executable,
            "-m",
            "lightning_hybrid.train",
            "experiment=nanogpt_cpu",
            f"data.path={args.data}",
            "trainer=ddp",
            "trainer.devices=2",
            "data.batch_size=6",
            f"trainer.max_steps={args.steps}",
            *METHODS[method],
            f"hydra.run.dir={run_dir}",
        ]
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        with open(run_dir.parent / f"{run_dir.name}.log", "w") as log:
            subprocess.run(
                cmd, check=True, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_NUM_THREADS": "1"}
            )
    return run_dir


def val_curve(run_dir: Path) -> list[tuple[int, float]]:
    with open(run_dir / "csv" / "metrics.csv") as f:
        return [(int(r["step"]), float(r["val_loss"])) for r in csv.DictReader(f) if r.get("val_loss")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--work", type=Path, default=HERE / "results/terngrad/work")
    parser.add_argument("--out", type=Path, default=HERE / "results/terngrad")
    args = parser.parse_args()
    rows, curves = [], {}
    for method in METHODS:
        run_dir = run(method, args)
        summary = json.loads((run_dir / "summary.json").read_text())
        sent = summary["GradientCompression"]["bytes_per_step"]
        rows.append({"method": method, "val_loss": summary["val_loss"], "bytes_per_step": round(sent)})
        curves[method] = val_curve(run_dir)
    write(rows, curves, args)


def write(rows: list[dict], curves: dict, args) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "ddp.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    fp32 = rows[0]["bytes_per_step"]
    lines = [
        f"2 CPU processes (gloo), tinyshakespeare, nanoGPT CPU configuration, ternary weights, {args.steps} steps",
        "",
    ]
    lines += [
        "| gradient exchange | final val loss | bytes sent a step, per rank | fp32's bytes / these |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['method']} | {r['val_loss']:.3f} | {r['bytes_per_step']:,} | {fp32 / r['bytes_per_step']:.2f}x |"
        for r in rows
    ]
    (args.out / "ddp.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for method, points in curves.items():
        plt.plot(*zip(*points), marker="o", label=method)
    plt.xlabel("step")
    plt.ylabel("val loss")
    plt.legend()
    plt.title("2-process DDP, ternary char-level GPT")
    plt.savefig(args.out / "val_curves.png", dpi=120)


if __name__ == "__main__":
    main()
