"""The end-of-run summary every job returns, writes to summary.json and prints."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from lightning_hybrid.export import save_packed


def callback_summaries(callbacks: Iterable[pl.Callback]) -> dict[str, Any]:
    """{class name: its summary()} for the callbacks that have one (AuxLRController, TrustRegion, ...)."""
    return {type(c).__name__: c.summary() for c in callbacks if callable(getattr(c, "summary", None))}


def packed_export(model: pl.LightningModule, path: Path, layout: str, float_dtype: str | None) -> dict[str, Any]:
    """Write the packed file and describe it: path, bytes, compression, bits per quantized weight."""
    report = save_packed(model, path, layout=layout, float_dtype=float_dtype)
    return {
        "packed_file": report.path,
        "file_bytes": report.file_bytes,
        "compression_vs_fp32": round(report.compression_vs_fp32, 2),
        "compression_vs_bf16": round(report.compression_vs_bf16, 2),
        "quantized_bits_per_weight": round(report.quantized_bits_per_weight, 3),
    }


def format_summary(title: str, rows: Sequence[tuple[str, Any]], label_width: int) -> str:
    """A blank line, the title, then one `  label  value` line per row, the values aligned."""
    return "\n".join(["", title] + [f"  {label:<{label_width}}{value}" for label, value in rows])


def finish(summary: dict[str, Any], output_dir: str | os.PathLike, trainer: pl.Trainer, text: str) -> dict[str, Any]:
    """summary.json in `output_dir` (rank 0 writes it) and `text` printed once; returns `summary`."""
    if trainer.is_global_zero:
        (Path(output_dir) / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    rank_zero_info(text)
    return summary


def write_curves(output_dir: Path) -> dict[str, Any]:
    """curves.png from the run's csv/metrics.csv ({"curves": its path}); without matplotlib a warning that
    names the extra and {"curves": None}: a missing plot never fails a run."""
    from lightning_hybrid.harness.run_curves import plot_run

    metrics = Path(output_dir) / "csv" / "metrics.csv"
    if not metrics.is_file():
        return {}
    try:
        path = plot_run(metrics, Path(output_dir) / "curves.png", f"lightning_hybrid run {Path(output_dir).name}")
    except ImportError as err:
        rank_zero_warn(f"curves.png not written: {err}")
        return {"curves": None}
    return {"curves": str(path)}
