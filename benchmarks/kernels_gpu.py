"""GPU benchmark of the Triton kernels: decode GEMV, prefill GEMM, and a QAT training step.

    python benchmarks/kernels_gpu.py                     # on a CUDA machine; writes benchmarks/results/kernels/
    python benchmarks/kernels_gpu.py --smoke --out /tmp/k   # tiny shapes on a CPU under TRITON_INTERPRET=1

Figures (median of triton.testing.do_bench; "graph" under a CUDA graph, i.e. without launch overhead):
  * decode, batch 1, (in, out) = 4096x4096, 4096x11008, 11008x4096, 8192x8192: the packed "2bit" kernel
    with bf16 activations and with int8 activations (its quantizer included) against torch's bf16
    F.linear; the achieved bandwidth (bytes that must move / time) and its fraction of the GPU's peak.
  * prefill at 16, 64, 256, 1024 tokens: the same, and the smallest token count where bf16 wins.
  * one QAT training step (forward, backward, AdamW) of a GPT of 124M parameters (GPT-2 small shape)
    under bf16 autocast: unquantized, ternary on the kernels, ternary on the torch reference.
Also the largest relative error of each kernel against the torch reference, as a sanity check.
"""

from __future__ import annotations

import sys

if "--smoke" in sys.argv:  # before triton is imported, which lightning_hybrid's kernels do
    import os

    os.environ.setdefault("TRITON_INTERPRET", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import triton  # noqa: E402

from lightning_hybrid.models import GPT, GPTConfig  # noqa: E402
from lightning_hybrid.quant import convert, pack  # noqa: E402
from lightning_hybrid.quant import reference as ref  # noqa: E402
from lightning_hybrid.quant.kernels.bitlinear import packed_linear  # noqa: E402

DECODE_SHAPES = [(4096, 4096), (4096, 11008), (11008, 4096), (8192, 8192)]
PREFILL_TOKENS = [16, 64, 256, 1024]
# Peak HBM bandwidth from the vendors' datasheets, bytes/s, matched against torch.cuda.get_device_name.
PEAK_BANDWIDTH = {"H200": 4.8e12, "H100 NVL": 3.9e12, "H100 PCIe": 2.0e12, "H100": 3.35e12, "A100": 2.0e12}
GPT_124M = GPTConfig(vocab_size=50304, block_size=1024, n_layer=12, n_head=12, n_embd=768)


def timer(fn, graph: bool) -> float:
    """Median milliseconds of fn()."""
    if not torch.cuda.is_available():  # smoke mode: just run it
        start = time.perf_counter()
        fn()
        return (time.perf_counter() - start) * 1e3
    fn()  # autotuning happens here, outside any measurement or graph capture
    if graph:
        return triton.testing.do_bench_cudagraph(fn, return_mode="median")
    return triton.testing.do_bench(fn, return_mode="median")


def peak_bandwidth(name: str) -> float | None:
    return next((bw for key, bw in PEAK_BANDWIDTH.items() if key in name), None)


def packed_operands(k: int, n: int, device: str):
    w = torch.randn(n, k, device=device)
    codes, scale = ref.ternary_codes(w)
    return pack.pack_2bit(codes), scale.reshape(1), ref.dequantize(codes, scale, dtype_of(device))


def dtype_of(device: str) -> torch.dtype:
    return torch.bfloat16 if device == "cuda" else torch.float32  # the interpreter computes in fp32


def gemm_row(k: int, n: int, m: int, device: str, graph: bool) -> dict:
    packed, scale, w = packed_operands(k, n, device)
    x = torch.randn(m, k, device=device, dtype=w.dtype)
    variants = {
        "torch_bf16": lambda: F.linear(x, w),
        "packed_bf16_act": lambda: packed_linear(x, packed, scale, None, k, None),
        "packed_int8_act": lambda: packed_linear(x, packed, scale, None, k, 8),
    }
    row = {"in": k, "out": n, "tokens": m}
    for name, fn in variants.items():
        row[f"{name}_ms"] = timer(fn, graph)
        if graph:
            row[f"{name}_eager_ms"] = timer(fn, False)
    expected = {"packed_bf16_act": F.linear(x, w), "packed_int8_act": F.linear(ref.quantize_activation(x), w)}
    for name, want in expected.items():
        got = variants[name]().float()
        row[f"{name}_max_rel_err"] = float((got - want.float()).abs().max() / want.float().abs().max())
        row[f"speedup_{name}"] = row["torch_bf16_ms"] / row[f"{name}_ms"]
    row["packed_bytes"] = packed.numel() + 2 * (m * k + m * n)
    row["bf16_bytes"] = 2 * (n * k + m * k + m * n)
    return row


def add_bandwidth(row: dict, device_name: str) -> dict:
    seconds = row["packed_bf16_act_ms"] / 1e3
    row["packed_GBps"] = row["packed_bytes"] / seconds / 1e9
    row["torch_bf16_GBps"] = row["bf16_bytes"] / (row["torch_bf16_ms"] / 1e3) / 1e9
    peak = peak_bandwidth(device_name)
    row["packed_peak_fraction"] = None if peak is None else row["packed_GBps"] * 1e9 / peak
    return row


def training_step_ms(cfg: GPTConfig, mode: str, batch: int, steps: int, device: str) -> float:
    os.environ["LIGHTNING_HYBRID_KERNELS"] = {"ternary_reference": "torch", "ternary_kernels": "triton"}.get(
        mode, "auto"
    )
    torch.manual_seed(0)
    model = GPT(cfg).to(device)
    if mode != "unquantized":
        convert(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device == "cuda")
    idx = torch.randint(0, cfg.vocab_size, (batch, cfg.block_size), device=device)

    def step():
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            loss = F.cross_entropy(model(idx).flatten(0, 1).float(), idx.flatten())
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    times = []
    for i in range(steps + 3):  # 3 warm-up steps (autotuning)
        sync(device)
        start = time.perf_counter()
        step()
        sync(device)
        if i >= 3:
            times.append((time.perf_counter() - start) * 1e3)
    os.environ["LIGHTNING_HYBRID_KERNELS"] = "auto"
    return statistics.median(times)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def environment(device: str) -> dict:
    env = {"torch": torch.__version__, "triton": triton.__version__, "device": device}
    if device == "cuda":
        env.update(gpu=torch.cuda.get_device_name(), cuda=torch.version.cuda)
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny shapes on a CPU under TRITON_INTERPRET=1")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/kernels"))
    parser.add_argument("--batch", type=int, default=8, help="sequences a training step (1024 tokens each)")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and not args.smoke:
        parser.error("no CUDA device: pass --smoke for the CPU interpreter check")
    env = environment(device)
    shapes = [(64, 96), (96, 64)] if args.smoke else DECODE_SHAPES
    graph = device == "cuda"
    decode = [add_bandwidth(gemm_row(k, n, 1, device, graph), env.get("gpu", "")) for k, n in shapes]
    prefill = [gemm_row(k, n, m, device, graph) for k, n in shapes for m in ([16] if args.smoke else PREFILL_TOKENS)]
    cfg = GPTConfig(vocab_size=64, block_size=32, n_layer=1, n_head=2, n_embd=32) if args.smoke else GPT_124M
    modes = ("unquantized", "ternary_kernels", "ternary_reference")
    steps = {
        m: training_step_ms(cfg, m, 2 if args.smoke else args.batch, 1 if args.smoke else args.steps, device)
        for m in modes
    }
    report = {"environment": env, "decode": decode, "prefill": prefill, "training_step_ms": steps}
    report["gpt_parameters"] = sum(p.numel() for p in GPT(cfg).parameters())
    write(report, args.out)


def write(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu.json").write_text(json.dumps(report, indent=1))
    env, lines = report["environment"], []
    lines += [f"# Kernels on {env.get('gpu', env['device'])}", "", f"`{json.dumps(env)}`", "", "## Decode, batch 1"]
    lines += [
        "",
        "| in x out | torch bf16 ms | packed, bf16 act | packed, int8 act | speedup bf16 / int8 act | GB/s | of peak ",
    ]
    lines[-1] += "| max rel err bf16 / int8 act |"
    lines += ["|---|---|---|---|---|---|---|---|"]
    for r in report["decode"]:
        frac = "n/a" if r["packed_peak_fraction"] is None else f"{r['packed_peak_fraction']:.0%}"
        lines.append(
            f"| {r['in']}x{r['out']} | {r['torch_bf16_ms']:.4f} | {r['packed_bf16_act_ms']:.4f} "
            f"| {r['packed_int8_act_ms']:.4f} "
            f"| {r['speedup_packed_bf16_act']:.2f}x / {r['speedup_packed_int8_act']:.2f}x "
            f"| {r['packed_GBps']:.0f} | {frac} "
            f"| {r['packed_bf16_act_max_rel_err']:.1e} / {r['packed_int8_act_max_rel_err']:.1e} |"
        )
    lines += [
        "",
        "## Prefill",
        "",
        "| in x out | tokens | torch bf16 ms | speedup bf16 act | speedup int8 act |",
        "|---|---|---|---|---|",
    ]
    for r in report["prefill"]:
        lines.append(
            f"| {r['in']}x{r['out']} | {r['tokens']} | {r['torch_bf16_ms']:.4f} | {r['speedup_packed_bf16_act']:.2f}x "
            f"| {r['speedup_packed_int8_act']:.2f}x |"
        )
    steps = report["training_step_ms"]
    lines += ["", f"## QAT training step, GPT of {report['gpt_parameters'] / 1e6:.0f}M parameters", ""]
    lines += [f"- {mode}: {ms:.1f} ms ({ms / steps['unquantized']:.2f}x unquantized)" for mode, ms in steps.items()]
    (out / "gpu.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
