"""Figures from finished runs: final val loss per (method, base LR), best and worst LR, steps to a
target, step-time ratio. Plain Python over the result dicts that `bench` writes."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Cell:
    """One (workload, method, base LR): its seeds."""

    method: str
    lr: float
    finals: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    val_curves: list[list[tuple[int, float]]] = field(default_factory=list)
    step_s: list[float] = field(default_factory=list)
    spikes: list[int] = field(default_factory=list)  # per seed, from the logged train losses

    @property
    def mean(self) -> float:
        """Mean final val loss; infinite when any seed failed (an LR that diverges once is not safe)."""
        return statistics.mean(self.finals) if self.finals and not self.failures else float("inf")

    @property
    def std(self) -> float:
        return statistics.stdev(self.finals) if len(self.finals) > 1 else 0.0


@dataclass
class MethodSummary:
    method: str
    best: Cell
    worst_mean: float
    steps_to_target: int | None  # for the seed-mean val curve of the best cell
    step_time_ratio: float | None
    failures: int


def cells_by_workload(results: list[dict[str, Any]]) -> dict[str, dict[tuple[str, float], Cell]]:
    table: dict[str, dict[tuple[str, float], Cell]] = defaultdict(dict)
    for r in results:
        cell = table[r["workload"]].setdefault((r["method"], r["lr"]), Cell(r["method"], r["lr"]))
        if r["status"] != "ok":
            cell.failures.append(f"seed {r['seed']}: {r['reason']}")
            continue
        cell.finals.append(r["final_val_loss"])
        cell.val_curves.append([tuple(v) for v in r["val"]])
        if r.get("median_step_s"):
            cell.step_s.append(r["median_step_s"])
        cell.spikes.append(count_spikes([loss for _, loss, *_ in r.get("curve", [])]))
    return table


def count_spikes(losses: list[float], window: int = 10, rise: float = 0.15) -> int:
    """Logged train losses more than `rise` (15%) above the median of the `window` logged before them.

    With the harness's log every 10 steps, batch-to-batch noise of the char-level GPT stays within
    about 5% of the median; a 15% jump is a loss spike, not noise."""
    return sum(
        1 for i in range(window, len(losses)) if losses[i] > (1 + rise) * statistics.median(losses[i - window : i])
    )


def band(curves: list[list[tuple[int, float]]]) -> tuple[list[int], list[float], list[float], list[float]]:
    """Steps present in every curve, with the mean, min and max loss over the curves at each."""
    if not curves:
        return [], [], [], []
    maps = [dict(c) for c in curves]
    steps = sorted(set(maps[0]).intersection(*maps[1:]))
    rows = [[m[s] for m in maps] for s in steps]
    return steps, [statistics.mean(r) for r in rows], [min(r) for r in rows], [max(r) for r in rows]


def steps_to_target(cell: Cell, target: float) -> int | None:
    """First step at which the seed-mean val loss is at or below `target` (the reference method's
    final val loss reaches it at its last validation by construction)."""
    steps, mean, _, _ = band(cell.val_curves)
    return next((s for s, loss in zip(steps, mean) if loss <= target), None)


def summarize(cells: dict[tuple[str, float], Cell], reference: str) -> tuple[float | None, list[MethodSummary]]:
    """The target (the reference method's final val loss at its best LR) and each method's figures."""
    by_method: dict[str, list[Cell]] = defaultdict(list)
    for (method, _), cell in sorted(cells.items()):
        by_method[method].append(cell)
    best = {m: min(cs, key=lambda c: c.mean) for m, cs in by_method.items()}
    target = (
        _final_of_mean_curve(best[reference]) if reference in best and best[reference].mean < float("inf") else None
    )
    ref_time = _mean([t for c in by_method.get(reference, []) for t in c.step_s])
    summaries = []
    for method, cs in by_method.items():
        steps = steps_to_target(best[method], target) if target is not None else None
        own_time = _mean([t for c in cs for t in c.step_s])
        summaries.append(
            MethodSummary(
                method=method,
                best=best[method],
                worst_mean=max(c.mean for c in cs),
                steps_to_target=steps,
                step_time_ratio=own_time / ref_time if own_time and ref_time else None,
                failures=sum(len(c.failures) for c in cs),
            )
        )
    return target, summaries


def _final_of_mean_curve(cell: Cell) -> float:
    """The seed-mean val loss at the last validation: the final val loss, computed exactly as the curves
    that steps_to_target searches (the recorded finals are rounded to 4 decimals)."""
    _, mean, _, _ = band(cell.val_curves)
    return mean[-1] if mean else cell.mean


def _mean(values: list[float]) -> float | None:
    return statistics.mean(values) if values else None


def _fmt_loss(mean: float, std: float | None = None) -> str:
    if mean == float("inf"):
        return "failed"
    return f"{mean:.3f}" + (f" ± {std:.3f}" if std is not None else "")


def markdown(results: list[dict[str, Any]], reference: str) -> str:
    """The headline and detail tables for every workload."""
    out = []
    for workload, cells in sorted(cells_by_workload(results).items()):
        target, summaries = summarize(cells, reference)
        ref = next((s for s in summaries if s.method == reference), None)
        ref_steps = ref.steps_to_target if ref else None
        out.append(f"### {workload}\n")
        out.append(f"Target val loss: {_fmt_loss(target) if target else 'n/a'} ({reference} at its best base LR).\n")
        out.append(
            "| method | best base LR | final val loss at best LR | worst final val loss over base LRs "
            "| steps to target (x reference) | time per step (x reference) | failed runs |"
        )
        out.append("|---|---|---|---|---|---|---|")
        for s in summaries:
            if s.steps_to_target is None:
                steps = "not reached" if target else "n/a"
            else:
                ratio = f" ({s.steps_to_target / ref_steps:.2f}x)" if ref_steps else ""
                steps = f"{s.steps_to_target}{ratio}"
            time_ratio = f"{s.step_time_ratio:.2f}x" if s.step_time_ratio else "n/a"
            out.append(
                f"| {s.method} | {s.best.lr:g} | {_fmt_loss(s.best.mean, s.best.std)} | {_fmt_loss(s.worst_mean)} "
                f"| {steps} | {time_ratio} | {s.failures} |"
            )
        out.append(
            "\n| method | base LR | seeds finished | final val loss (mean ± std) | loss spikes per seed | failures |"
        )
        out.append("|---|---|---|---|---|---|")
        for (method, lr), cell in sorted(cells.items()):
            fails = "; ".join(cell.failures) or "-"
            finished = _fmt_loss(statistics.mean(cell.finals), cell.std) if cell.finals else "failed"
            spikes = ", ".join(map(str, cell.spikes)) or "-"
            out.append(f"| {method} | {lr:g} | {len(cell.finals)} | {finished} | {spikes} | {fails} |")
        out.append("")
    return "\n".join(out)
