"""Where the base-LR grid is extended: a method whose best base LR is the largest (or smallest) one it
ran gets the next LR beyond it, until its best lies inside its grid or `limit` LRs were added."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from lightning_hybrid.harness.report import cells_by_workload


def on_1_3_grid(lr: float) -> float:
    """`lr` moved to the nearest value of the 1, 3, 10, 30, ... sequence (in log distance)."""
    decade = 10 ** math.floor(math.log10(lr))
    candidates = [decade, 3 * decade, 10 * decade]
    return min(candidates, key=lambda c: abs(math.log(lr / c)))


def beyond(lrs: list[float], up: bool) -> float:
    """The next base LR past the grid's edge, one grid step further (on the 1-3 sequence)."""
    lrs = sorted(lrs, reverse=not up)  # the edge last, its neighbour before it
    if len(lrs) < 2:
        raise ValueError(f"extending a base-LR grid needs at least two LRs, got {lrs}.")
    return float(f"{on_1_3_grid(lrs[-1] * lrs[-1] / lrs[-2]):.3g}")


def extensions(
    results: list[dict[str, Any]], base_lrs: list[float], swept: set[str], limit: int
) -> dict[str, dict[str, list[float]]]:
    """{workload: {method: LRs beyond the base grid}}: those already run, plus the next one past an
    edge for each swept method whose best finished base LR (lowest seed-mean final val loss) is an edge
    of the LRs it ran, while fewer than `limit` were added on that side. A function of the results
    alone, so every process computes the same; call it again after the added runs finish."""
    added: dict[str, dict[str, list[float]]] = defaultdict(dict)
    for workload, cells in cells_by_workload(results).items():
        by_method: dict[str, list] = defaultdict(list)
        for (method, _), cell in cells.items():
            if method in swept:
                by_method[method].append(cell)
        for method, method_cells in by_method.items():
            ran = sorted(c.lr for c in method_cells)
            lrs = {lr for lr in ran if lr not in base_lrs}
            best = min(method_cells, key=lambda c: c.mean)
            if len(ran) >= 2 and best.mean < float("inf") and best.lr in (ran[0], ran[-1]):
                up = best.lr == ran[-1]
                if sum((lr > max(base_lrs)) == up for lr in lrs) < limit:
                    lrs.add(beyond(ran, up))
            if lrs:
                added[workload][method] = sorted(lrs)
    return dict(added)
