"""Figures across the workloads of a suite: each method's final val loss as a ratio to the tuned
reference, its guarantee (worst ratio over workloads), the performance profile, steps to the target
and the cost of a method (step time and state bytes against the reference's)."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from lightning_hybrid.harness.report import cells_by_workload, summarize

INF = float("inf")


@dataclass
class Standing:
    """One method on one workload, against the reference at its best base LR."""

    workload: str
    method: str
    best_ratio: float  # seed-mean final val loss at the method's best base LR / the target
    worst_ratio: float  # the same at its worst base LR (equal to best_ratio for a method run at one LR)
    steps_ratio: float | None  # steps to the target at the best LR / the reference's; None: never reached


def standings(results: list[dict[str, Any]], reference: str) -> list[Standing]:
    """A Standing for each (workload, method) of the results; a workload whose reference has no
    finished best cell has none (nothing to compare with)."""
    out = []
    for workload, cells in sorted(cells_by_workload(results).items()):
        target, summaries = summarize(cells, reference)
        ref = next((s for s in summaries if s.method == reference), None)
        if not target or ref is None or not ref.steps_to_target:
            continue
        base = ref.best.mean  # of the recorded finals, as every method's means are (the target is unrounded)
        for s in summaries:
            steps = s.steps_to_target / ref.steps_to_target if s.steps_to_target else None
            out.append(Standing(workload, s.method, s.best.mean / base, s.worst_mean / base, steps))
    return out


def profile(standings_: list[Standing], taus: list[float], worst: bool = False) -> dict[str, list[float]]:
    """Performance profile (Dolan & Moré 2002, as AlgoPerf draws it): for each method and each tau, the
    fraction of workloads on which its final val loss is within a factor tau of the best method's on
    that workload. `worst`: each method at its worst base LR (what it gives untuned), the best
    method's loss still being the best at any LR."""
    by_workload: dict[str, dict[str, Standing]] = defaultdict(dict)
    for s in standings_:
        by_workload[s.workload][s.method] = s
    methods = sorted({s.method for s in standings_})
    fractions: dict[str, list[float]] = {m: [] for m in methods}
    for tau in taus:
        for m in methods:
            within = 0
            for row in by_workload.values():
                best = min(s.best_ratio for s in row.values())
                own = row.get(m)
                value = (own.worst_ratio if worst else own.best_ratio) if own else INF
                within += value <= tau * best
            fractions[m].append(within / len(by_workload) if by_workload else 0.0)
    return fractions


def _ratio(value: float | None) -> str:
    if value is None:
        return "not reached"
    return "failed" if value == INF else f"{value:.3f}"


def markdown(results: list[dict[str, Any]], reference: str) -> str:
    """The cross-workload tables: ratios per workload, each method's guarantee, steps to the target."""
    rows = standings(results, reference)
    workloads = sorted({s.workload for s in rows})
    methods = sorted({s.method for s in rows}, key=lambda m: (m != reference, m))
    cell = {(s.workload, s.method): s for s in rows}
    out = [
        f"Final val loss as a ratio to {reference} at its best base LR (seed means), at each method's best "
        "/ worst base LR; a method run at one LR has one figure. Guarantee: the largest ratio over the "
        "workloads.\n",
        "| method | " + " | ".join(workloads) + " | guarantee (best LR) | guarantee (worst LR) |",
        "|---|" + "---|" * (len(workloads) + 2),
    ]
    for m in methods:
        own = [cell.get((w, m)) for w in workloads]
        figures = [
            "-"
            if s is None
            else (
                _ratio(s.best_ratio)
                if s.best_ratio == s.worst_ratio
                else f"{_ratio(s.best_ratio)} / {_ratio(s.worst_ratio)}"
            )
            for s in own
        ]
        best = max((s.best_ratio if s else INF) for s in own) if own else INF
        worst = max((s.worst_ratio if s else INF) for s in own) if own else INF
        out.append(f"| {m} | " + " | ".join(figures) + f" | {_ratio(best)} | {_ratio(worst)} |")
    out += [
        f"\nSteps to reach {reference}'s final val loss, at each method's best base LR, as a ratio to "
        f"{reference}'s steps:\n",
        "| method | " + " | ".join(workloads) + " |",
        "|---|" + "---|" * len(workloads),
    ]
    for m in methods:
        figures = ["-" if (w, m) not in cell else _ratio(cell[(w, m)].steps_ratio) for w in workloads]
        out.append(f"| {m} | " + " | ".join(figures) + " |")
    return "\n".join(out) + "\n"


def cost_markdown(results: list[dict[str, Any]], reference: str) -> str:
    """Step time (median of the runs' median step times) and state bytes of each method against the
    reference's, per workload. Meaningful for runs of one process (see `benchmark=suite-cost`)."""
    per: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        if r["status"] == "ok":
            per[(r["workload"], r["method"])].append(r)
    out = [
        "| workload | method | runs | ms per step | time per step (x reference) | optimizer state (bytes) "
        "| callback state (bytes) | extra state vs reference (bytes) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for workload in sorted({w for w, _ in per}):
        ref = per.get((workload, reference), [])
        ref_time, ref_bytes = _median_step(ref), _state(ref)
        methods = sorted((m for w, m in per if w == workload), key=lambda m: (m != reference, m))
        for m in methods:
            runs = per[(workload, m)]
            t, b = _median_step(runs), _state(runs)
            ratio = f"{t / ref_time:.2f}x" if t and ref_time else "n/a"
            extra = f"{b[0] + b[1] - ref_bytes[0] - ref_bytes[1]:,}" if None not in (*b, *ref_bytes) else "n/a"
            ms = f"{t * 1e3:.1f}" if t else "n/a"
            out.append(f"| {workload} | {m} | {len(runs)} | {ms} | {ratio} | {_n(b[0])} | {_n(b[1])} | {extra} |")
    return "\n".join(out) + "\n"


def _median_step(runs: list[dict[str, Any]]) -> float | None:
    times = [r["median_step_s"] for r in runs if r.get("median_step_s")]
    return statistics.median(times) if times else None


def _state(runs: list[dict[str, Any]]) -> tuple[int | None, int | None]:
    if not runs:
        return None, None
    return runs[0].get("optimizer_state_bytes"), runs[0].get("callback_state_bytes")


def _n(value: int | None) -> str:
    return "n/a" if value is None else f"{value:,}"
