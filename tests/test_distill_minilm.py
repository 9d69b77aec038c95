"""`lightning_hybrid.distill_minilm`, the sentence job's command (the job is jobs/distill_minilm.py, tested in
tests/jobs/test_distill_minilm.py)."""

from importlib.metadata import distribution

import lightning_hybrid.distill_minilm as command
from lightning_hybrid.jobs import distill_minilm


def test_the_old_names_are_the_jobs_own():
    assert (command.main, command.run, command.agreement) == (
        distill_minilm.main,
        distill_minilm.run,
        distill_minilm.agreement,
    )


def test_the_console_script_runs_the_same_job():
    scripts = {e.name: e.value for e in distribution("lightning_hybrid").entry_points if e.group == "console_scripts"}
    assert scripts["lightning-hybrid-distill-minilm"] == "lightning_hybrid.jobs.distill_minilm:main"
