"""PNG plots of a benchmark (matplotlib, from the `bench` extra; imported only here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning_hybrid.harness.report import band, cells_by_workload, summarize
from lightning_hybrid.harness.suite import profile, standings

TAUS = [1.0 + 0.005 * i for i in range(41)]  # 1.00 to 1.20


def pyplot():
    """matplotlib.pyplot on the Agg backend, or an ImportError that names the extra."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError("plots need matplotlib: pip install 'lightning_hybrid[bench]'") from err
    return plt


def plot_workload(workload: str, cells: dict, reference: str, out_dir: Path) -> list[Path]:
    plt = pyplot()
    target, summaries = summarize(cells, reference)
    paths = []

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, s in enumerate(summaries):
        if s.best.val_curves:
            steps, mean, low, high = band(s.best.val_curves)
            ax.plot(steps, mean, color=f"C{i}", label=f"{s.method} (lr {s.best.lr:g})")
            ax.fill_between(steps, low, high, alpha=0.2, color=f"C{i}")
    if target:
        ax.axhline(target, color="grey", linestyle=":", label=f"target {target:.3f}")
    title = f"{workload}: validation loss at each method's best base LR (band: min-max over seeds)"
    paths.append(_finish(fig, ax, title, "step", "val loss", out_dir / f"{workload}_curves.png", plt))

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, s in enumerate(summaries):
        method_cells = sorted((c for (m, _), c in cells.items() if m == s.method), key=lambda c: c.lr)
        ok = [c for c in method_cells if c.finals]
        means = [sum(c.finals) / len(c.finals) for c in ok]
        if len(method_cells) == 1 and ok:  # a method that is not swept (fixed LR): a reference line
            ax.axhline(means[0], linestyle="--", color=f"C{i}", label=f"{s.method} (fixed lr {ok[0].lr:g}, not swept)")
        elif ok:
            ax.errorbar(
                [c.lr for c in ok],
                means,
                yerr=[c.std for c in ok],
                marker="o",
                capsize=3,
                color=f"C{i}",
                label=s.method,
            )
    ax.set_xscale("log")
    title = f"{workload}: final validation loss against base LR (mean ± std over seeds)"
    paths.append(_finish(fig, ax, title, "base LR (log scale)", "final val loss", out_dir / f"{workload}_lr.png", plt))

    ref = next((s for s in summaries if s.method == reference), None)
    if target and ref and ref.steps_to_target:
        fig, ax = plt.subplots(figsize=(7, 4))
        names = [s.method for s in summaries]
        ratios = [(s.steps_to_target / ref.steps_to_target) if s.steps_to_target else 0.0 for s in summaries]
        bars = ax.bar(names, ratios)
        for bar, s in zip(bars, summaries):
            label = f"{bar.get_height():.2f}x" if s.steps_to_target else "not reached"
            ax.annotate(
                label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=8
            )
        ax.axhline(1.0, color="grey", linestyle=":")
        ax.set(
            title=f"{workload}: steps to reach val loss {target:.3f}, relative to {reference}",
            xlabel="method (at its best base LR)",
            ylabel="steps / reference steps",
        )
        ax.title.set_fontsize(9)
        paths.append(save_figure(fig, out_dir / f"{workload}_steps.png", plt))
    return paths


def _finish(fig, ax, title: str, xlabel: str, ylabel: str, path: Path, plt) -> Path:
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.title.set_fontsize(9)
    ax.legend(fontsize=8)
    return save_figure(fig, path, plt)


def save_figure(fig, path: Path, plt) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_all(results: list[dict[str, Any]], reference: str, out_dir: Path) -> list[Path]:
    return [
        p
        for w, cells in sorted(cells_by_workload(results).items())
        for p in plot_workload(w, cells, reference, out_dir)
    ]


def plot_profiles(results: list[dict[str, Any]], reference: str, out_dir: Path) -> Path:
    """profile.png: the performance profile over the workloads, each method at its best base LR
    (solid) and at its worst (dashed)."""
    plt = pyplot()
    rows = standings(results, reference)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    best, worst = profile(rows, TAUS), profile(rows, TAUS, worst=True)
    for i, method in enumerate(best):
        ax.step(TAUS, best[method], where="post", color=f"C{i}", label=f"{method}, best LR")
        if worst[method] != best[method]:
            ax.step(TAUS, worst[method], where="post", color=f"C{i}", linestyle="--", label=f"{method}, worst LR")
    ax.set_ylim(-0.02, 1.02)
    n = len({r.workload for r in rows})
    title = f"Performance profile over {n} workloads: fraction within tau of the best final val loss"
    return _finish(
        fig, ax, title, "tau (final val loss / best method's)", "fraction of workloads", out_dir / "profile.png", plt
    )
