"""The end-of-run summary (jobs/summary.py): the aligned text every job prints, summary.json on rank 0,
the callbacks' own summaries and the packed export's sizes."""

import json
from types import SimpleNamespace

from torch import nn

from lightning_hybrid.jobs.summary import callback_summaries, finish, format_summary, packed_export
from lightning_hybrid.quant import convert


def test_rows_are_aligned_under_a_title():
    text = format_summary("run summary", [("steps", 20), ("final val loss", 1.5)], label_width=17)
    assert text.split("\n") == ["", "run summary", "  steps            20", "  final val loss   1.5"]


def test_rank_zero_writes_summary_json_and_other_ranks_do_not(tmp_path):
    summary = {"steps": 3, "val_loss": 2.0}
    assert finish(summary, tmp_path, SimpleNamespace(is_global_zero=True), "text") is summary
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    other = tmp_path / "other"
    other.mkdir()
    finish(summary, other, SimpleNamespace(is_global_zero=False), "text")
    assert not (other / "summary.json").exists()


def test_callbacks_with_a_summary_are_named_by_their_class():
    class Counter:
        def summary(self):
            return {"steps": 4}

    assert callback_summaries([Counter(), object()]) == {"Counter": {"steps": 4}}


def test_the_export_is_described_by_its_file(tmp_path):
    model = nn.Sequential(nn.Linear(16, 32), nn.Linear(32, 4))
    convert(model, exclude=[])
    described = packed_export(model, tmp_path / "m.packed.safetensors", "2bit", None)
    assert described["file_bytes"] == (tmp_path / "m.packed.safetensors").stat().st_size
    assert described["quantized_bits_per_weight"] == 2.0
    assert described["compression_vs_fp32"] > 1


def test_curves_without_matplotlib_warn_with_the_extra_and_the_run_goes_on(tmp_path, monkeypatch):
    import warnings

    from lightning_hybrid.harness import run_curves
    from lightning_hybrid.jobs.summary import write_curves

    assert write_curves(tmp_path) == {}  # no metrics.csv: nothing to plot
    (tmp_path / "csv").mkdir()
    (tmp_path / "csv" / "metrics.csv").write_text("epoch,step,train_loss\n0,0,5.0\n")

    def no_matplotlib(*args):
        raise ImportError("plots need matplotlib: pip install 'lightning_hybrid[bench]'")

    monkeypatch.setattr(run_curves, "plot_run", no_matplotlib)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert write_curves(tmp_path) == {"curves": None}
    assert any("curves.png not written: plots need matplotlib" in str(w.message) for w in caught)
