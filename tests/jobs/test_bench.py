"""The benchmark harness end to end in quick mode: grid, resume, failures, report, plots."""

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from lightning_hybrid.jobs.bench import run_benchmark
from lightning_hybrid.jobs.configs import config_dir

REPO = Path(__file__).resolve().parents[2]


def _bench(out_dir: Path, *overrides: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "lightning_hybrid.bench", f"out_dir={out_dir}", *overrides]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


# quick mode without schedule-free AdamW (its train/eval swap is tested in tests/callbacks/test_schedulefree.py):
# 10 runs instead of 14
QUICK = ["benchmark.methods=[adamw_cosine,prodigy,hybrid]"]


@pytest.mark.slow
def test_quick_mode_runs_the_grid_reports_plots_and_resumes(tmp_path):
    out = tmp_path / "quick"
    first = _bench(out, *QUICK)
    assert first.stdout.count("smoke_ternary/") == 10  # 2 methods x 2 LRs x 2 seeds + prodigy x 2 seeds
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert len(rows) == 10 and all(r["status"] == "ok" for r in rows)
    assert all(
        float(r["median_step_s"]) > 0 and float(r["quant_error_mean"]) > 0 and int(r["file_bytes"]) > 0 for r in rows
    )
    summary = (out / "summary.md").read_text()
    assert (
        "10 of 10 runs finished, 0 failed" in summary
        and "| adamw_cosine | 0.01 |" in summary
        and "steps to target" in summary
    )
    hybrid = json.loads((out / "runs" / "smoke_ternary" / "hybrid" / "lr0.01" / "seed0" / "result.json").read_text())
    assert hybrid["AuxLRController"]["steps"] == hybrid["TrustRegion"]["steps"] == 30
    for name in ("curves", "lr", "steps"):
        assert (out / f"smoke_ternary_{name}.png").stat().st_size > 10_000
    again = _bench(out, *QUICK)  # resumes: every run is finished, none is redone
    assert "smoke_ternary/" not in again.stdout
    assert "from 1 invocation(s)" in (out / "summary.md").read_text()
    (out / "summary.md").unlink()
    assert "smoke_ternary/" not in _bench(out, *QUICK, "report_only=true").stdout  # a report from what is there
    assert "10 of 10 runs finished, 0 failed" in (out / "summary.md").read_text()


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


@pytest.mark.slow
def test_a_compiled_hybrid_run_finishes_in_the_grid(tmp_path):
    out = tmp_path / "compiled"
    _bench(
        out,
        "benchmark.methods=[hybrid]",
        "benchmark.seeds=[0]",
        "benchmark.lrs=[1.0e-2]",
        "overrides=['compile=true']",
    )
    [row] = list(csv.DictReader((out / "results.csv").open()))
    assert row["status"] == "ok" and float(row["final_val_loss"]) < 5.0, row
    run = out / "runs" / "smoke_ternary" / "hybrid" / "lr0.01" / "seed0"
    assert "compile=true" in json.loads((run / "result.json").read_text())["overrides"]


def test_missing_text_path_is_a_clear_error(tmp_path):
    cmd = [sys.executable, "-m", "lightning_hybrid.bench", f"out_dir={tmp_path}", "benchmark=full"]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "needs `text_paths.shakespeare`" in result.stderr


@pytest.mark.slow
def test_suite_quick_with_two_workers_extends_edges_and_reports_across_workloads(tmp_path):
    out = tmp_path / "suite"
    two = [
        "benchmark.workloads=[smoke_ternary,digits_ternary]",
        "benchmark.methods=[adamw_cosine,hybrid,prodigy,learned_scale]",
    ]
    _bench(out, "benchmark=suite-quick", "workers=2", *two)
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert rows and all(r["status"] == "ok" for r in rows)
    assert not list((out / "runs").glob("**/claim"))  # every claimed run finished
    for workload in ("smoke_ternary", "digits_ternary"):
        for method in ("adamw_cosine", "hybrid"):
            finals = {
                float(r["lr"]): float(r["final_val_loss"])
                for r in rows
                if (r["workload"], r["method"]) == (workload, method)
            }
            # two base LRs, so the best is an edge: one LR is added past it (extend_edges=1)
            best = min((1e-3, 1e-2), key=finals.get)
            assert set(finals) == {1e-3, 1e-2, 1e-4 if best == 1e-3 else 0.1}, (workload, method, finals)
        for method, lr in (("prodigy", 1.0), ("learned_scale", 1e-3)):  # LR-free: once, at its fixed LR
            assert [float(r["lr"]) for r in rows if (r["workload"], r["method"]) == (workload, method)] == [lr]
    summary = (out / "summary.md").read_text()
    assert "## Across workloads" in summary and "guarantee (worst LR)" in summary and "## Cost" in summary
    assert "from 1 invocation(s)" in summary  # the workers' runs carry the invocation that started them
    assert all(int(r["optimizer_state_bytes"]) > 0 for r in rows)
    assert (out / "profile.png").stat().st_size > 10_000
    again = _bench(out, "benchmark=suite-quick", *two)
    assert "smoke_ternary/" not in again.stdout and "digits_ternary/" not in again.stdout  # nothing redone


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("workers=0", "`workers` must be a positive integer, got 0"),
        ("+benchmark.order=random", "`benchmark.order` must be one of 'grid', 'interleaved'; got 'random'"),
        ("+benchmark.sections=[costs]", "`benchmark.sections` must be one of"),
    ],
)
def test_bad_harness_settings_are_named_before_any_run(tmp_path, override, match):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("bench", overrides=[f"out_dir={tmp_path}", override])
    with pytest.raises(ValueError, match=match):
        run_benchmark(cfg, "python -m lightning_hybrid.bench")
    assert not (tmp_path / "runs").exists()


def _children(pid: int) -> list[int]:
    """Processes whose parent is `pid` (Linux /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while being read
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads worker processes from Linux /proc")
def test_terminating_the_suite_stops_its_workers_and_records_no_failure(tmp_path):
    # runs far longer than the test waits: a worker still alive at the end was left behind
    cmd = [sys.executable, "-m", "lightning_hybrid.bench", f"out_dir={tmp_path}", "benchmark=suite-quick", "workers=2"]
    cmd += ["benchmark.steps=1000000", "benchmark.workloads=[smoke_ternary]"]
    parent = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("runs/**/claim")) and time.monotonic() < deadline:  # workers are training
        time.sleep(0.5)
    workers = _children(parent.pid)
    assert len(workers) == 2 and list(tmp_path.glob("runs/**/claim"))
    parent.terminate()
    assert parent.wait(timeout=60) != 0
    deadline = time.monotonic() + 20
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not any(_alive(w) for w in workers)
    assert not [p for p in tmp_path.glob("runs/**/result.json") if '"status": "failed"' in p.read_text()]
