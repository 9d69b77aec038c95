"""The benchmark harness: `python -m lightning_hybrid.bench` (Hydra; conf/bench.yaml, conf/benchmark/).

Runs a grid of (workload x method x base LR x seed) through the main job's own `train`, one
result.json per run under `runs_dir` (written when the run ends, so an interrupted grid resumes
where it stopped; each run's logs and packed export go to <out_dir>/work/), then writes summary.md,
results.csv and PNG plots into <out_dir>. With `workers` > 1 it runs that many worker processes of
itself, which share the grid's runs; with `benchmark.extend_edges` > 0 it adds base LRs past the
edge where a method is best.
"""

from __future__ import annotations

import csv
import math
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import lightning
import torch
from hydra import compose
from omegaconf import DictConfig, OmegaConf

from lightning_hybrid.harness import suite
from lightning_hybrid.harness.extend import extensions
from lightning_hybrid.harness.grid import (
    RunSpec,
    check_same_run,
    claim,
    clear_claims,
    expand,
    interleave,
    is_done,
    load_results,
    result_path,
    run_key,
    save_result,
)
from lightning_hybrid.harness.recorder import RunRecorder
from lightning_hybrid.harness.report import markdown
from lightning_hybrid.jobs.configs import config_dir
from lightning_hybrid.jobs.train import train
from lightning_hybrid.utils.checks import choice, non_negative_int, positive_int

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
    "optimizer_state_bytes",
    "callback_state_bytes",
]
# What a run's result.json keeps of the main job's summary (the callbacks' own summaries by class name)
RECORDED = ("train_loss", "quant_error_mean", "file_bytes", "AuxLRController", "TrustRegion", "LearnedScale")
SECTIONS = ("across", "cost", "per_workload")  # of summary.md, in this order


def _common(cfg: DictConfig, workload: str) -> list[str]:
    """Overrides every run of `workload` gets: its steps and validation interval (the benchmark's when
    it sets them, else the workload's own `steps` / `eval_every`, else the main job's), the log interval,
    no progress bar, checkpoints or model summary, then the invocation's own `overrides` (a variant of
    every run: `"overrides=['model.bias=false']"`, each one quoted)."""
    b, spec = cfg.benchmark, cfg.workloads[workload]
    steps, every = b.get("steps") or spec.get("steps"), b.get("eval_every") or spec.get("eval_every")
    return [
        *([f"trainer.max_steps={steps}"] if steps else []),
        *([f"trainer.val_check_interval={every}"] if every else []),
        f"trainer.log_every_n_steps={b.log_every}",
        "callbacks.progress_bar=null",
        "callbacks.checkpoint=null",
        "+trainer.enable_progress_bar=false",
        "+trainer.enable_checkpointing=false",
        "+trainer.enable_model_summary=false",
        *cfg.get("overrides", []),
    ]


def grid(cfg: DictConfig, extra: dict[str, dict[str, list[float]]] | None = None) -> list[RunSpec]:
    """The runs of the configured grid, plus `extra` base LRs per workload and method (extensions)."""
    b, as_dict = cfg.benchmark, OmegaConf.to_container(cfg, resolve=True)
    catalogue, paths = (as_dict["workloads"], as_dict["methods"]), as_dict["text_paths"]
    unknown = [w for w in b.workloads if w not in catalogue[0]]
    if unknown:
        raise ValueError(f"unknown workload(s) {unknown}; defined: {sorted(catalogue[0])}.")
    runs = []
    for w in b.workloads:
        runs += expand(*catalogue, [w], b.methods, b.lrs, b.seeds, _common(cfg, w), paths)
        for method, lrs in (extra or {}).get(w, {}).items():
            runs += expand(*catalogue, [w], [method], lrs, b.seeds, _common(cfg, w), paths)
    return interleave(runs) if b.get("order", "grid") == "interleaved" else runs


def current_extensions(cfg: DictConfig) -> dict[str, dict[str, list[float]]]:
    """The base LRs the grid has grown by, from the finished runs of its workloads, methods and seeds
    (`benchmark.extend_edges` LRs at most past each edge; none when it is 0)."""
    b = cfg.benchmark
    limit = int(b.get("extend_edges", 0))
    if limit <= 0:
        return {}
    swept = {m for m in b.methods if cfg.methods[m].get("fixed_lr") is None}
    low, high = min(b.lrs), max(b.lrs)
    results = [
        r
        for r in load_results(Path(cfg.runs_dir))
        if r["workload"] in b.workloads
        and r["method"] in swept
        and r["seed"] in b.seeds
        and (r["lr"] in b.lrs or not low <= r["lr"] <= high)
    ]
    return extensions(results, list(b.lrs), swept, limit)


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
        result.update({k: summary.get(k) for k in RECORDED})
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
    found = load_results(Path(cfg.runs_dir))
    results = [r for r in found if run_key(r["workload"], r["method"], r["lr"], r["seed"]) in keys]
    with (out_dir / "results.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=RESULT_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(results)
    invocations = len({r["invocation"] for r in results})
    failed = sum(r["status"] == "failed" for r in results)
    failures = (
        f" **The tables hold {failed} failed runs**: `retry_failed=true` reruns them (a missing package's are rerun "
        "anyway)."
        if failed
        else ""
    )
    header = (
        f"Command: `{command}`\n\nMachine: {machine()}\n\n"
        f"{len(results) - failed} of {len(runs)} runs finished, {failed} failed, from {invocations} invocation(s); "
        f"step-time ratios compare runs of all of them.{failures}\n\n"
    )
    (out_dir / "summary.md").write_text(header + _sections(cfg, results))
    if cfg.plots:
        from lightning_hybrid.harness.plots import plot_all, plot_profiles  # matplotlib, the bench extra

        plot_all(results, cfg.reference, out_dir)
        if len(cfg.benchmark.workloads) > 1 and "across" in (cfg.benchmark.get("sections") or ("across",)):
            plot_profiles(results, cfg.reference, out_dir)


def _sections(cfg: DictConfig, results: list[dict[str, Any]]) -> str:
    """summary.md after its header: across workloads (several of them), cost, then per workload, or
    the benchmark's own `sections` of these (`across`, `cost`, `per_workload`)."""
    parts, sections = [], cfg.benchmark.get("sections") or SECTIONS
    if "across" in sections and len(cfg.benchmark.workloads) > 1:
        parts.append("## Across workloads\n\n" + suite.markdown(results, cfg.reference))
    if "cost" in sections:
        parts.append(
            "## Cost\n\nState bytes: tensors the optimizer and the method's callbacks hold beyond the model's. "
            "Step times compare runs of one process only where the runs came from one invocation.\n\n"
            + suite.cost_markdown(results, cfg.reference)
        )
    if "per_workload" in sections:
        parts.append("## Per workload\n\n" + markdown(results, cfg.reference))
    return "\n".join(parts)


def run_grid(cfg: DictConfig, runs: list[RunSpec], invocation: str) -> None:
    """Run the grid's unfinished runs in this process (claiming each first when it is a worker)."""
    out_dir, runs_dir = Path(cfg.out_dir), Path(cfg.runs_dir)
    parent = os.getppid()
    for i, run in enumerate(runs, 1):
        if cfg.worker and os.getppid() != parent:  # the suite that started this worker is gone
            print("the benchmark that started this worker has stopped; so does the worker", flush=True)
            return
        check_same_run(runs_dir, run)
        path = result_path(runs_dir, run)
        if is_done(path, cfg.retry_failed) or (cfg.worker and not claim(runs_dir, run)):
            continue
        result = run_one(run, out_dir, cfg.benchmark.log_every, invocation)
        save_result(runs_dir, run, result)
        result_path(runs_dir, run).with_name("claim").unlink(missing_ok=True)
        outcome = result.get("final_val_loss") or result.get("reason")
        print(f"[{i}/{len(runs)}] {run.key}: {result['status']} {outcome} ({result['wall_s']} s)", flush=True)


def run_workers(cfg: DictConfig, argv: list[str], invocation: str) -> None:
    """`cfg.workers` processes of this job over the same grid, each taking the runs no other has
    claimed; stale claims of a killed suite are cleared first. Their runs record this invocation's id."""
    clear_claims(Path(cfg.runs_dir))
    command = [sys.executable, "-m", "lightning_hybrid.jobs.bench", *argv, "workers=1", "worker=true"]
    if cfg.get("invocation") is None:
        command.append(f"invocation={invocation}")
    command.append("hydra.output_subdir=null")
    procs = [subprocess.Popen(command) for _ in range(cfg.workers)]
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        codes = [p.wait() for p in procs]
    finally:  # an interrupted suite (Ctrl-C, kill) stops its workers too
        signal.signal(signal.SIGTERM, previous)
        for p in procs:
            if p.poll() is None:
                p.kill()
    if any(codes):
        raise RuntimeError(f"benchmark workers exited with {codes}; finished runs are kept, rerun to resume.")


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through run_workers' `finally`, which stops the workers


def check_settings(cfg: DictConfig) -> None:
    """The harness's own settings, before any run: each error names the setting and its value."""
    positive_int("workers", cfg.workers)
    positive_int("threads", cfg.threads)
    choice("benchmark.order", cfg.benchmark.get("order", "grid"), ("grid", "interleaved"))
    non_negative_int("benchmark.extend_edges", cfg.benchmark.get("extend_edges", 0))
    for section in cfg.benchmark.get("sections") or ():
        choice("benchmark.sections", section, SECTIONS)


def run_benchmark(cfg: DictConfig, command: str, argv: list[str] | None = None) -> Path:
    check_settings(cfg)
    out_dir = Path(cfg.out_dir)
    torch.set_num_threads(cfg.threads)
    invocation = cfg.get("invocation") or time.strftime("%Y%m%dT%H%M%S")
    extra, seen = current_extensions(cfg), None
    while not cfg.report_only and extra != seen:  # a new round while the edges move
        seen = extra
        if cfg.workers > 1:
            run_workers(cfg, argv if argv is not None else sys.argv[1:], invocation)
        else:
            run_grid(cfg, grid(cfg, extra), invocation)
        if cfg.worker:
            return out_dir
        extra = current_extensions(cfg)
    write_outputs(cfg, grid(cfg, extra), out_dir, command)
    print(f"results in {out_dir}/summary.md", flush=True)
    return out_dir


@hydra.main(config_path=config_dir(), config_name="bench", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run_benchmark(cfg, "python -m lightning_hybrid.bench " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
