"""curves.png of a run (harness/run_curves.py): metrics.csv parsing and a PNG of a sensible size."""

import struct

import pytest

from lightning_hybrid.harness.run_curves import lr_column, plot_run, read_metrics

CSV = """epoch,step,lr-AdamW/pg1,lr-AdamW/pg2,quant/lambda,quant_error/mean,train_loss,val_loss
0,0,0.001,0.001,0.0,0.61,5.5,
0,9,0.003,0.003,0.5,0.58,3.1,
0,9,,,,,,3.0
0,19,0.002,0.002,1.0,0.55,2.4,
0,19,,,,,,2.6
"""


def _png_size(path):
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"  # the PNG signature
    return struct.unpack(">II", head[16:24])  # IHDR: width, height


def test_every_numeric_column_becomes_a_series_of_steps(tmp_path):
    (tmp_path / "metrics.csv").write_text(CSV)
    series = read_metrics(tmp_path / "metrics.csv")
    assert series["val_loss"] == ([9.0, 19.0], [3.0, 2.6])
    assert series["train_loss"] == ([0.0, 9.0, 19.0], [5.5, 3.1, 2.4])
    assert lr_column(series) == "lr-AdamW/pg1" and "epoch" not in series


def test_the_plot_is_a_png_of_a_readable_size(tmp_path):
    pytest.importorskip("matplotlib")
    (tmp_path / "metrics.csv").write_text(CSV)
    path = plot_run(tmp_path / "metrics.csv", tmp_path / "curves.png", "a run")
    width, height = _png_size(path)
    assert 600 <= width <= 1200 and 700 <= height <= 1400 and path.stat().st_size > 20_000


def test_a_run_without_quantization_still_plots(tmp_path):
    pytest.importorskip("matplotlib")
    (tmp_path / "metrics.csv").write_text("epoch,step,train_loss,val_loss\n0,0,5.0,\n0,9,4.0,4.2\n")
    assert _png_size(plot_run(tmp_path / "metrics.csv", tmp_path / "c.png", "fp32"))[0] > 0
