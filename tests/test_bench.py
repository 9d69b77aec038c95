"""`lightning_hybrid.bench`, the harness's command (the job is jobs/bench.py, tested in tests/jobs/test_bench.py)."""

from importlib.metadata import distribution

import lightning_hybrid.bench as command
from lightning_hybrid.jobs import bench


def test_the_old_names_are_the_jobs_own():
    assert (command.main, command.grid, command.run_one, command.run_benchmark) == (
        bench.main,
        bench.grid,
        bench.run_one,
        bench.run_benchmark,
    )


def test_the_console_script_runs_the_same_job():
    scripts = {e.name: e.value for e in distribution("lightning_hybrid").entry_points if e.group == "console_scripts"}
    assert scripts["lightning-hybrid-bench"] == "lightning_hybrid.jobs.bench:main"
