"""The per-step tensor work of LearnedScale and of the step guard, against an AdamW step, on the parameters
of the suite's char GPT (ternary, 53 tensors, 818k weights), in one process, interleaved rounds.

    python benchmarks/step_overhead.py --threads 1

Rows: AdamW's step; LearnedScale's (hypergradient, accumulate, tuner, place: control/scale.py); the step
guard's non-finite check as it is (one foreach norm pass) and as it was (an isfinite pass per tensor).
Median of --rounds rounds, in ms.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from lightning_hybrid.control.scale import Displacement, ScaleTuner
from lightning_hybrid.models.gpt import GPT, GPTConfig
from lightning_hybrid.quant import convert


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, bias=True))
    convert(model)
    params = list(model.parameters())
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    grads = [p.grad for p in params]
    adamw = torch.optim.AdamW(params, lr=3e-3)
    displacement, tuner = Displacement(params, [3e-3] * len(params)), ScaleTuner()

    def learned_scale() -> None:
        scale = tuner.scale
        h = displacement.hypergradient(params, grads, scale, 0.01)
        displacement.accumulate(params, scale)
        tuner.update(h)
        displacement.place(params, tuner.scale)

    def guard_foreach_norm() -> bool:
        return bool(~torch.isfinite(torch.stack(torch._foreach_norm(grads)).sum()))

    def guard_isfinite_per_tensor() -> bool:
        return bool(~torch.stack([torch.isfinite(g).all() for g in grads]).all())

    work = {
        "AdamW step": adamw.step,
        "LearnedScale step": learned_scale,
        "guard: one foreach norm pass": guard_foreach_norm,
        "guard: isfinite per tensor (before)": guard_isfinite_per_tensor,
    }
    times: dict[str, list[float]] = {name: [] for name in work}
    names = list(work)
    for r in range(args.rounds + 1):  # round 0 warms up
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            work[name]()
            if r:
                times[name].append(time.perf_counter() - start)
    print(f"{len(params)} tensors, {sum(p.numel() for p in params):,} weights, {args.threads} thread(s)")
    for name, values in times.items():
        print(f"{name}: {1e3 * statistics.median(values):.2f} ms")


if __name__ == "__main__":
    main()
