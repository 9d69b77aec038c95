"""Batch-1 latency on a CPU: the packed inference layer against the fp32 nn.Linear it replaces.

    python benchmarks/packed_cpu.py                       # about 1 minute; writes benchmarks/results/kernels/
    python benchmarks/packed_cpu.py --threads 1 --out /tmp/cpu1

Shapes (in -> out): the Linear layers of the main job's GPT (n_embd 128: attention qkv and proj, MLP fc
and proj) and 4096 -> 4096. Per shape, one token through
  * fp32:        nn.Linear
  * C 2bit:      PackedBitLinear from the "2bit" export, default CPU path: the C kernel reading the packed
                 bytes as they are (quant/kernels/native.py)
  * C int8:      the same weights from the "base3" export: the C kernel on the int8 codes, unpacked once
                 and kept (the path of every layout but "2bit")
  * int8 matmul: the "2bit" layer on torch._int_mm (its path where the C kernel cannot be built)
  * reference:   LIGHTNING_HYBRID_KERNELS=torch (the same integer sums in fp32 F.linear)
Then more tokens: C 2bit against int8 matmul and fp32 at 1 to 64 tokens.
Each figure is the median over `--repeats` rounds of the mean time of `--calls` calls; the variants run
interleaved in every round, so load on a shared machine hits them alike.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from lightning_hybrid.quant import formats
from lightning_hybrid.quant import reference as ref
from lightning_hybrid.quant.inference import PackedBitLinear
from lightning_hybrid.quant.kernels import native

SHAPES = [(128, 384), (128, 128), (128, 512), (512, 128), (4096, 4096)]
VARIANTS = ("fp32", "C 2bit", "C int8", "int8 matmul", "reference")
CROSSOVER_SHAPES = [(128, 384), (4096, 4096)]
CROSSOVER_TOKENS = (1, 4, 16, 64)
CROSSOVER_VARIANTS = ("fp32", "C 2bit", "int8 matmul")
LAYOUT = {"C 2bit": "2bit", "C int8": "base3", "int8 matmul": "2bit", "reference": "2bit"}


def layers(k: int, n: int, names=VARIANTS) -> dict[str, nn.Module]:
    linear = nn.Linear(k, n, bias=False)
    codes, scale = ref.ternary_codes(linear.weight)
    packed = {}
    for name in names[1:]:
        layer = PackedBitLinear(k, n, 1.58, LAYOUT[name], 8)
        layer.weight_packed.copy_(formats.pack(codes, LAYOUT[name]))
        layer.weight_scale.fill_(float(scale))
        packed[name] = layer
    return {"fp32": linear, **packed}


def mean_call_ms(name: str, layer: nn.Module, x: torch.Tensor, calls: int) -> float:
    if name == "reference":
        os.environ["LIGHTNING_HYBRID_KERNELS"] = "torch"
    else:  # unset, as a user has it: a set variable costs a lookup on every call
        os.environ.pop("LIGHTNING_HYBRID_KERNELS", None)
    native.MAX_TOKENS, default = (0 if name == "int8 matmul" else native.MAX_TOKENS), native.MAX_TOKENS
    try:
        start = time.perf_counter()
        for _ in range(calls):
            layer(x)
        return (time.perf_counter() - start) / calls * 1e3
    finally:
        native.MAX_TOKENS = default


def measure(k: int, n: int, repeats: int, calls: int, tokens: int = 1, names=VARIANTS) -> dict[str, float]:
    mods, x = layers(k, n, names), torch.randn(tokens, k)
    times = {name: [] for name in names}
    with torch.no_grad():
        for name, layer in mods.items():  # warm-up: the code caches, the C kernel's build and check
            mean_call_ms(name, layer, x, 3)
        for _ in range(repeats):
            for name, layer in mods.items():
                times[name].append(mean_call_ms(name, layer, x, calls))
    return {name: statistics.median(t) for name, t in times.items()}


def crossover(args) -> list[dict]:
    rows = []
    for k, n in CROSSOVER_SHAPES:
        for tokens in CROSSOVER_TOKENS:
            calls = args.calls if k * n < 4e6 else max(args.calls // 10, 1)
            ms = measure(k, n, args.repeats, calls, tokens, CROSSOVER_VARIANTS)
            rows.append({"in": k, "out": n, "tokens": tokens, **{f"{v} ms": round(ms[v], 4) for v in ms}})
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/kernels"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for k, n in SHAPES:
        ms = measure(k, n, args.repeats, args.calls if k * n < 4e6 else max(args.calls // 10, 1))
        rows.append({"in": k, "out": n, **{f"{v} ms": round(ms[v], 4) for v in VARIANTS}})
        rows[-1].update({f"fp32 / {v}": round(ms["fp32"] / ms[v], 2) for v in VARIANTS[1:]})
        print(rows[-1], flush=True)
    write(rows, crossover(args), args)


def cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.machine())


def write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def write(rows: list[dict], cross: list[dict], args) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"cpu_latency_{args.threads}thread"
    write_csv(args.out / f"{stem}.csv", rows)
    write_csv(args.out / f"{stem}_tokens.csv", cross)
    env = {"torch": torch.__version__, "cpu": cpu_name(), "threads": args.threads, "cpu_count": os.cpu_count()}
    lines = [f"Latency, ms (median of {args.repeats} rounds); {json.dumps(env)}", "", "One token:", ""]
    lines += ["| in -> out | " + " | ".join(VARIANTS) + " | fp32 / C 2bit |", "|---" * (len(VARIANTS) + 2) + "|"]
    for r in rows:
        cells = [f"{r[f'{v} ms']:.4f}" for v in VARIANTS]
        lines.append(f"| {r['in']} -> {r['out']} | " + " | ".join(cells) + f" | {r['fp32 / C 2bit']:.2f}x |")
    lines += ["", "Tokens (the C kernel against torch._int_mm):", ""]
    lines += ["| in -> out | tokens | " + " | ".join(CROSSOVER_VARIANTS) + " |", "|---" * 5 + "|"]
    for r in cross:
        cells = [f"{r[f'{v} ms']:.4f}" for v in CROSSOVER_VARIANTS]
        lines.append(f"| {r['in']} -> {r['out']} | {r['tokens']} | " + " | ".join(cells) + " |")
    (args.out / f"{stem}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
