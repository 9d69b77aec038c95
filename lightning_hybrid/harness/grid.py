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


def result_path(out_dir: Path, run: RunSpec) -> Path:
    return out_dir / "runs" / run.key / "result.json"


def load_results(out_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((out_dir / "runs").glob("**/result.json"))]


def save_result(out_dir: Path, run: RunSpec, result: dict[str, Any]) -> None:
    path = result_path(out_dir, run)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result) + "\n")
    tmp.replace(path)  # a run killed mid-write leaves no half result that would count as finished
