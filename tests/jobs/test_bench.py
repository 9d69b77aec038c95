"""The benchmark harness end to end in quick mode: grid, resume, failures, report, plots."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _bench(out_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "lightning_hybrid.bench", f"out_dir={out_dir}", *overrides]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_quick_mode_runs_the_grid_reports_plots_and_resumes(tmp_path):
    out = tmp_path / "quick"
    first = _bench(out)
    assert first.stdout.count("smoke_ternary/") == 14  # 3 methods x 2 LRs x 2 seeds + prodigy x 2 seeds
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 14 and all(r["status"] == "ok" for r in rows)
    assert all(
        float(r["median_step_s"]) > 0 and float(r["quant_error_mean"]) > 0 and int(r["file_bytes"]) > 0 for r in rows
    )
    summary = (out / "summary.md").read_text()
    assert "14 of 14 runs finished" in summary and "| adamw_cosine | 0.01 |" in summary and "steps to target" in summary
    hybrid = json.loads((out / "runs" / "smoke_ternary" / "hybrid" / "lr0.01" / "seed0" / "result.json").read_text())
    assert hybrid["AuxLRController"]["steps"] == hybrid["TrustRegion"]["steps"] == 30
    for name in ("curves", "lr", "steps"):
        assert (out / f"smoke_ternary_{name}.png").stat().st_size > 10_000
    again = _bench(out)  # resumes: every run is finished, none is redone
    assert "smoke_ternary/" not in again.stdout
    assert "from 1 invocation(s)" in (out / "summary.md").read_text()
    (out / "summary.md").unlink()
    assert "smoke_ternary/" not in _bench(out, "report_only=true").stdout  # a report from what is there
    assert "14 of 14 runs finished" in (out / "summary.md").read_text()


@pytest.mark.slow
def test_a_failing_run_is_recorded_and_the_grid_goes_on(tmp_path):
    out = tmp_path / "failing"
    _bench(
        out,
        "benchmark.methods=[adamw_cosine]",
        "benchmark.seeds=[0]",
        "benchmark.lrs=[1.0e-3,1.0e-2]",
        'workloads.smoke_ternary.overrides=["experiment=smoke","quant=ternary","model.n_head=3"]',
    )
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [r["status"] for r in rows] == ["failed", "failed"]
    assert "`n_embd` (32) must be divisible by `n_head` (3)" in rows[0]["reason"]
    assert "| adamw_cosine | 0.001 | 0 | failed |" in (out / "summary.md").read_text()


def test_missing_text_path_is_a_clear_error(tmp_path):
    cmd = [sys.executable, "-m", "lightning_hybrid.bench", f"out_dir={tmp_path}", "benchmark=full"]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "needs `text_paths.shakespeare`" in result.stderr
