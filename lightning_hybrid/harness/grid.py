"""The run grid: which (workload, method, base LR, seed) runs exist, where they live, what they left."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def run_key(workload: str, method: str, lr: float, seed: int) -> str:
    return f"{workload}/{method}/lr{lr:g}/seed{seed}"


@dataclass(frozen=True)
class RunSpec:
    workload: str
    method: str
    lr: float
    seed: int
    overrides: tuple[str, ...]

    @property
    def key(self) -> str:
        return run_key(self.workload, self.method, self.lr, self.seed)


def _fill(override: str, paths: Mapping[str, Any], workload: str) -> str:
    try:
        filled = override.format_map(dict(paths))
    except KeyError as err:
        raise ValueError(f"workload {workload!r} uses {{{err.args[0]}}}, which text_paths does not define.") from err
    for name, value in paths.items():
        if f"{{{name}}}" in override and not value:
            raise ValueError(f"workload {workload!r} needs `text_paths.{name}` (a path to the text), got {value!r}.")
    return filled


def expand(
    workloads: Mapping[str, Mapping[str, Any]],
    methods: Mapping[str, Mapping[str, Any]],
    selected_workloads: Sequence[str],
    selected_methods: Sequence[str],
    lrs: Sequence[float],
    seeds: Sequence[int],
    common: Sequence[str],
    paths: Mapping[str, Any],
) -> list[RunSpec]:
    """Every run of the grid. A method with `fixed_lr` runs once per seed at that LR (it is not swept);
    a workload may restrict itself to some `methods`."""
    for name, catalogue, kind in ((selected_workloads, workloads, "workload"), (selected_methods, methods, "method")):
        unknown = [n for n in name if n not in catalogue]
        if unknown:
            raise ValueError(f"unknown {kind}(s) {unknown}; defined: {sorted(catalogue)}.")
    runs = []
    for w in selected_workloads:
        spec = workloads[w]
        base = [_fill(o, paths, w) for o in spec["overrides"]]
        for m in selected_methods:
            if spec.get("methods") and m not in spec["methods"]:
                continue
            fixed = methods[m].get("fixed_lr")
            for lr in [fixed] if fixed is not None else lrs:
                for seed in seeds:
                    overrides = (*base, *methods[m]["overrides"], f"model.lr={lr}", f"seed={seed}", *common)
                    runs.append(RunSpec(w, m, float(lr), int(seed), tuple(overrides)))
    return runs


def interleave(runs: Sequence[RunSpec]) -> list[RunSpec]:
    """The runs as rounds, one per (workload, seed) in the order they first appear, each running the
    methods in grid order in even rounds and in reverse in odd ones: step times measured this way in one
    process are not biased by a method's place in the order (a machine that warms up or slows down)."""
    rounds: dict[tuple[str, int], list[RunSpec]] = {}
    for run in runs:
        rounds.setdefault((run.workload, run.seed), []).append(run)
    return [run for i, group in enumerate(rounds.values()) for run in (group if i % 2 == 0 else group[::-1])]


def result_path(runs_dir: Path, run: RunSpec) -> Path:
    return runs_dir / run.key / "result.json"


def load_results(runs_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(runs_dir.glob("**/result.json"))]


def claim(runs_dir: Path, run: RunSpec) -> bool:
    """Take the run for this process (one of several sharing the grid): False if another has it."""
    path = result_path(runs_dir, run).with_name("claim")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.touch(exist_ok=False)
    except FileExistsError:
        return False
    return True


def clear_claims(runs_dir: Path) -> None:
    """Forget the claims of processes that no longer run (a killed suite), so that their runs rerun."""
    for path in runs_dir.glob("**/claim"):
        path.unlink(missing_ok=True)


def save_result(runs_dir: Path, run: RunSpec, result: dict[str, Any]) -> None:
    path = result_path(runs_dir, run)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result) + "\n")
    tmp.replace(path)  # a run killed mid-write leaves no half result that would count as finished


def _comparable(overrides: Sequence[str]) -> list[str]:
    # A text's path may be spelled differently on another machine or from another directory.
    return [o for o in overrides if not o.startswith("data.path=")]


def check_same_run(runs_dir: Path, run: RunSpec) -> None:
    """Refuse a finished result at `run`'s place that was made with other overrides: a runs directory
    shared by invocations with different `overrides` (or edited workloads) would mix their runs."""
    path = result_path(runs_dir, run)
    if not path.exists():
        return
    found = json.loads(path.read_text()).get("overrides")
    if found is not None and _comparable(found) != _comparable(run.overrides):
        raise ValueError(
            f"{path} was run with overrides {found}, not this grid's {list(run.overrides)}: give this "
            "invocation its own `runs_dir` (or `out_dir`)."
        )


# A run that failed for want of a package failed because of the environment, not the method: once the
# package is installed, the failure no longer holds.
ENVIRONMENT_FAILURES = ("ImportError", "ModuleNotFoundError")


def is_done(path: Path, retry_failed: bool) -> bool:
    """Whether the result at `path` stands: it exists, and it is not a failure to rerun (every failure
    with retry_failed, else a missing package's)."""
    if not path.exists():
        return False
    result = json.loads(path.read_text())
    if result.get("status") != "failed":
        return True
    return not (retry_failed or str(result.get("reason", "")).startswith(ENVIRONMENT_FAILURES))
