"""curves.png of one run: its metrics.csv (Lightning's CSVLogger) as three panels against the step."""

from __future__ import annotations

import csv
import math
from pathlib import Path

Series = tuple[list[float], list[float]]  # (steps, values)

# (the column or the column prefix, the label); the LR's column is LearningRateMonitor's lr-<optimizer>
LOSSES = (("train_loss", "train loss"), ("val_loss", "val loss"))
QUANTIZATION = (("quant/lambda", "λ (quantization warm-up)"), ("quant_error/mean", "mean ‖W − Q(W)‖ / ‖W‖"))


def read_metrics(path: Path) -> dict[str, Series]:
    """Every numeric column of metrics.csv as (steps, values), blank cells left out."""
    series: dict[str, Series] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            step = row.get("step")
            if not step:
                continue
            for key, value in row.items():
                if key in ("step", "epoch") or value in (None, ""):
                    continue
                number = float(value)
                if math.isfinite(number):
                    steps, values = series.setdefault(key, ([], []))
                    steps.append(float(step))
                    values.append(number)
    return series


def lr_column(series: dict[str, Series]) -> str | None:
    """The first LearningRateMonitor column (lr-AdamW, lr-AdamW-momentum is not an LR)."""
    return next((k for k in sorted(series) if k.startswith("lr-") and not k.endswith("-momentum")), None)


def plot_run(metrics: Path, out: Path, title: str) -> Path:
    """Write `out` (PNG): losses, the LR in effect, λ and the mean quantization error, each against the step.
    A panel whose columns the run did not log says so. Needs matplotlib (the `bench` extra)."""
    from lightning_hybrid.harness.plots import pyplot, save_figure

    plt = pyplot()
    series = read_metrics(metrics)
    fig, axes = plt.subplots(3, 1, figsize=(7.5, 8.5), sharex=True)
    _panel(axes[0], series, LOSSES, "loss (nats per token)")
    lr = lr_column(series)
    _panel(axes[1], series, ((lr, f"LR in effect ({lr})"),) if lr else (), "learning rate", log=True)
    _panel(axes[2], series, QUANTIZATION, "λ / relative error")
    axes[-1].set_xlabel("optimizer step")
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, out, plt)


def _panel(ax, series: dict[str, Series], columns, ylabel: str, log: bool = False) -> None:
    present = [(column, label) for column, label in columns if column in series]
    for column, label in present:
        steps, values = series[column]
        ax.plot(steps, values, marker="o" if len(steps) < 3 else None, label=label)
    if present:
        ax.legend(fontsize=8)
        if log and all(v > 0 for column, _ in present for v in series[column][1]):
            ax.set_yscale("log")
    else:
        names = ", ".join(c for c, _ in columns) or "lr-*"
        ax.text(0.5, 0.5, f"not logged by this run: {names}", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
