"""The main job's training step with and without torch.compile, the QAT model against fp32, in one process.

    python benchmarks/compile_step.py                       # ~10 min on 2 cores: benchmarks/results/compile/
    python benchmarks/compile_step.py --steps 40 --rounds 1 --out /tmp/compile   # a quick look

Four variants, quant=fp32 / quant=ternary x compile=false / true, each a main-job run: train() of
jobs/train.py (the Lightning loop, the default GPT on the embedded stdlib corpus, --steps steps, one small
validation at the end, no export), in --rounds rounds whose order turns each round, so that load on a
shared machine hits them alike. Per run, from the harness's RunRecorder: the median step time after the
first 10 steps, and the first step's time (where torch.compile compiles). Inductor starts from an empty
cache directory, as on a new machine, so the first round's compiled runs pay the whole compilation; later
rounds reuse what this process compiled. Reported: ternary / fp32 step times, eager and compiled (medians
over rounds); compiled / eager for each; and the steps after which the time a compiled run saves covers
its cold first step.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from lightning_hybrid.harness.recorder import RunRecorder
from lightning_hybrid.jobs.configs import config_dir
from lightning_hybrid.jobs.train import train

VARIANTS = [("fp32", False), ("ternary", False), ("fp32", True), ("ternary", True)]
QUIET = [
    "callbacks.progress_bar=null",
    "callbacks.checkpoint=null",
    "+trainer.enable_progress_bar=false",
    "+trainer.enable_checkpointing=false",
    "+trainer.enable_model_summary=false",
    "export_formats=[]",
    "data.val_windows=16",
]


def name(quant: str, compiled: bool) -> str:
    return f"{quant}, {'compiled' if compiled else 'eager'}"


def run(quant: str, compiled: bool, steps: int, work: Path) -> dict[str, float]:
    overrides = [f"quant={quant}", f"compile={str(compiled).lower()}", f"trainer.max_steps={steps}"]
    overrides += [f"trainer.val_check_interval={steps}", *QUIET]
    recorder = RunRecorder(log_every=steps)
    with initialize_config_dir(config_dir(), version_base="1.3"):
        train(compose("train", overrides=overrides), work / f"{quant}-{compiled}", extra_callbacks=[recorder])
    times = recorder.step_times
    return {"median_step_s": statistics.median(times[10:]), "first_step_s": times[0]}


def report(results: dict[str, list[dict]], args) -> str:
    med = {k: statistics.median(r["median_step_s"] for r in runs) for k, runs in results.items()}
    first = {k: runs[0]["first_step_s"] for k, runs in results.items()}  # the first round: a cold cache
    env = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpu_count": os.cpu_count()}
    lines = [f"Main-job training step, {args.steps} steps a run, {args.rounds} rounds; {json.dumps(env)}", ""]
    lines += ["| variant | median step, ms | first step (cold cache), s |", "|---|---:|---:|"]
    lines += [f"| {k} | {med[k] * 1e3:.1f} | {first[k]:.2f} |" for k in results]
    lines += ["", "| ratio | value |", "|---|---:|"]
    for mode in (False, True):
        ratio = med[name("ternary", mode)] / med[name("fp32", mode)]
        lines.append(f"| ternary / fp32, {'compiled' if mode else 'eager'} | {ratio:.3f}x |")
    for quant in ("fp32", "ternary"):
        eager, compiled = med[name(quant, False)], med[name(quant, True)]
        lines.append(f"| {quant}: compiled / eager | {compiled / eager:.3f}x |")
        saved = eager - compiled
        cost = first[name(quant, True)] - first[name(quant, False)]
        pays = f"{cost / saved:,.0f} steps" if saved > 0 else "never (no step is faster)"
        lines.append(f"| {quant}: compile pays back after | {pays} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/compile"))
    args = parser.parse_args()
    results: dict[str, list[dict]] = {name(*v): [] for v in VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(tmp) / "inductor")  # cold, as on a new machine
        for r in range(args.rounds):
            order = VARIANTS if r % 2 == 0 else VARIANTS[::-1]
            for quant, compiled in order:
                results[name(quant, compiled)].append(run(quant, compiled, args.steps, Path(tmp) / str(r)))
                print(name(quant, compiled), results[name(quant, compiled)][-1], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    text = report(results, args)
    (args.out / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
