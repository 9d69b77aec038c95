"""The benchmark harness: `python -m lightning_hybrid.bench` (Hydra; conf/bench.yaml, conf/benchmark/).

Runs a grid of (workload x method x base LR x seed) through the main job's own `train`, one
result.json per run under <out_dir>/runs/ (written when the run ends, so an interrupted grid resumes
where it stopped; each run's logs and packed export go to <out_dir>/work/), then writes summary.md,
results.csv and PNG plots into <out_dir>.
"""

from __future__ import annotations

import csv
import math
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import lightning
import torch
from hydra import compose
from omegaconf import DictConfig, OmegaConf

from lightning_hybrid.harness.grid import RunSpec, expand, load_results, result_path, run_key, save_result
from lightning_hybrid.harness.recorder import RunRecorder
from lightning_hybrid.harness.report import markdown
from lightning_hybrid.jobs.configs import config_dir
from lightning_hybrid.jobs.train import train

RESULT_FIELDS = [
    "workload",
    "method",
    "lr",
    "seed",
    "status",
    "reason",
    "final_val_loss",
    "train_loss",
    "median_step_s",
    "peak_mem_mb",
    "quant_error_mean",
    "file_bytes",
    "wall_s",
    "invocation",
]


def grid(cfg: DictConfig) -> list[RunSpec]:
    b = cfg.benchmark
    common = [
        f"trainer.max_steps={b.steps}",
        f"trainer.val_check_interval={b.eval_every}",
        f"trainer.log_every_n_steps={b.log_every}",
        "callbacks.progress_bar=null",
        "callbacks.checkpoint=null",
        "+trainer.enable_progress_bar=false",
        "+trainer.enable_checkpointing=false",
        "+trainer.enable_model_summary=false",
    ]
    as_dict = OmegaConf.to_container(cfg, resolve=True)
    return expand(
        as_dict["workloads"], as_dict["methods"], b.workloads, b.methods, b.lrs, b.seeds, common, as_dict["text_paths"]
    )


def run_one(run: RunSpec, out_dir: Path, log_every: int, invocation: str) -> dict[str, Any]:
    """Train one grid point; a run that raises or ends non-finite is a result with status 'failed'."""
    run_dir = out_dir / "work" / run.key  # logs, checkpoints, packed export: not part of the results
    recorder = RunRecorder(log_every)
    result: dict[str, Any] = {
        "workload": run.workload,
        "method": run.method,
        "lr": run.lr,
        "seed": run.seed,
        "overrides": list(run.overrides),
        "invocation": invocation,
    }
    start = time.perf_counter()
    try:
        summary = train(
            compose(config_name="train", overrides=list(run.overrides)), run_dir, extra_callbacks=[recorder]
        )
        final = summary["val_loss"]
        ok = final is not None and math.isfinite(final)
        result.update(
            status="ok" if ok else "failed", reason="" if ok else f"final val loss {final}", final_val_loss=final
        )
        result.update(
            {
                k: summary.get(k)
                for k in ("train_loss", "quant_error_mean", "file_bytes", "AuxLRController", "TrustRegion")
            }
        )
    except Exception as err:  # noqa: BLE001 - a failing run is recorded and the grid goes on
        result.update(status="failed", reason=f"{type(err).__name__}: {err}"[:300])
    result.update(recorder.as_dict(), wall_s=round(time.perf_counter() - start, 1))
    return result


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(
                (line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), platform.processor()
            )
    except OSError:
        return platform.processor() or "unknown CPU"


def machine() -> str:
    device = (
        torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"{torch.get_num_threads()} torch thread(s)"
    )
    return (
        f"{platform.machine()} {_cpu_name()}, {os.cpu_count()} cores; {device}; "
        f"torch {torch.__version__}, lightning {lightning.__version__}"
    )


def write_outputs(cfg: DictConfig, runs: list[RunSpec], out_dir: Path, command: str) -> None:
    keys = {r.key for r in runs}
    results = [r for r in load_results(out_dir) if run_key(r["workload"], r["method"], r["lr"], r["seed"]) in keys]
    with (out_dir / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=RESULT_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(results)
    invocations = len({r["invocation"] for r in results})
    header = (
        f"Command: `{command}`\n\nMachine: {machine()}\n\n"
        f"{len(results)} of {len(runs)} runs finished, from {invocations} invocation(s); step-time ratios compare "
        "runs of all of them.\n\n"
    )
    (out_dir / "summary.md").write_text(header + markdown(results, cfg.reference))
    if cfg.plots:
        from lightning_hybrid.harness.plots import plot_all  # matplotlib, the bench extra

        plot_all(results, cfg.reference, out_dir)


def run_benchmark(cfg: DictConfig, command: str) -> Path:
    out_dir = Path(cfg.out_dir)
    torch.set_num_threads(cfg.threads)
    runs = grid(cfg)
    invocation = time.strftime("%Y%m%dT%H%M%S")
    for i, run in enumerate(runs, 1):
        path = result_path(out_dir, run)
        finished = path.exists() and not (cfg.retry_failed and '"status": "failed"' in path.read_text())
        if cfg.report_only or finished:
            continue
        result = run_one(run, out_dir, cfg.benchmark.log_every, invocation)
        save_result(out_dir, run, result)
        outcome = result.get("final_val_loss") or result.get("reason")
        print(f"[{i}/{len(runs)}] {run.key}: {result['status']} {outcome} ({result['wall_s']} s)", flush=True)
    write_outputs(cfg, runs, out_dir, command)
    print(f"results in {out_dir}/summary.md", flush=True)
    return out_dir


@hydra.main(config_path=config_dir(), config_name="bench", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run_benchmark(cfg, "python -m lightning_hybrid.bench " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
