"""Batch-1 latency on a CPU: the packed inference layer against the fp32 nn.Linear it replaces.

    python benchmarks/packed_cpu.py                       # about 1 minute; writes benchmarks/results/kernels/
    python benchmarks/packed_cpu.py --threads 1 --out /tmp/cpu1

Shapes (in -> out): the Linear layers of the main job's GPT (n_embd 128: attention qkv and proj, MLP fc
and proj) and 4096 -> 4096. Per shape, one token through
  * fp32:        nn.Linear
  * int8 cached: PackedBitLinear from the "2bit" export, default CPU path (int8 matmul, codes unpacked
                 once and kept, 1 byte a weight)
  * int8 packed: the same with cache_codes=False (unpacks the 2-bit bytes on every call)
  * reference:   LIGHTNING_HYBRID_KERNELS=torch (the same integer sums in fp32 F.linear)
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

from lightning_hybrid.quant import pack
from lightning_hybrid.quant import reference as ref
from lightning_hybrid.quant.inference import PackedBitLinear

SHAPES = [(128, 384), (128, 128), (128, 512), (512, 128), (4096, 4096)]
VARIANTS = ("fp32", "int8 cached", "int8 packed", "reference")


def layers(k: int, n: int) -> dict[str, nn.Module]:
    linear = nn.Linear(k, n, bias=False)
    codes, scale = ref.ternary_codes(linear.weight)
    packed = {}
    for name, cache in (("int8 cached", True), ("int8 packed", False), ("reference", True)):
        layer = PackedBitLinear(k, n, 1.58, "2bit", 8, cache_codes=cache)
        layer.weight_packed.copy_(pack.pack_2bit(codes))
        layer.weight_scale.fill_(float(scale))
        packed[name] = layer
    return {"fp32": linear, **packed}


def mean_call_ms(layer: nn.Module, x: torch.Tensor, calls: int, reference: bool) -> float:
    os.environ["LIGHTNING_HYBRID_KERNELS"] = "torch" if reference else "auto"
    start = time.perf_counter()
    for _ in range(calls):
        layer(x)
    return (time.perf_counter() - start) / calls * 1e3


def measure(k: int, n: int, repeats: int, calls: int) -> dict[str, float]:
    mods, x = layers(k, n), torch.randn(1, k)
    times = {name: [] for name in VARIANTS}
    with torch.no_grad():
        for name, layer in mods.items():  # warm-up, and the code caches
            mean_call_ms(layer, x, 3, name == "reference")
        for _ in range(repeats):
            for name, layer in mods.items():
                times[name].append(mean_call_ms(layer, x, calls, name == "reference"))
    return {name: statistics.median(t) for name, t in times.items()}


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
    write(rows, args)


def cpu_name() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), platform.machine())


def write(rows: list[dict], args) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"cpu_latency_{args.threads}thread"
    with open(args.out / f"{stem}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    env = {"torch": torch.__version__, "cpu": cpu_name(), "threads": args.threads}
    env["cpu_count"] = os.cpu_count()
    lines = [f"Batch-1 latency, ms (median of {args.repeats} rounds); {json.dumps(env)}", ""]
    lines += ["| in -> out | fp32 nn.Linear | int8 cached | int8 packed | reference | fp32 / int8 cached |"]
    lines += ["|---|---|---|---|---|---|"]
    for r in rows:
        cells = [f"{r[f'{v} ms']:.4f}" for v in VARIANTS]
        lines.append(f"| {r['in']} -> {r['out']} | " + " | ".join(cells) + f" | {r['fp32 / int8 cached']:.2f}x |")
    (args.out / f"{stem}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
