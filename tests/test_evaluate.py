"""`python -m lightning_hybrid.evaluate`, the command of jobs/evaluate.py (tested in tests/jobs/test_evaluate.py)."""

import lightning_hybrid.evaluate as command
from helpers.runs import command as run_command
from lightning_hybrid.jobs import evaluate


def test_the_command_is_the_jobs_main():
    assert command.main is evaluate.main and command.evaluate is evaluate.evaluate


def test_a_directory_that_is_not_a_run_is_refused_with_its_name(tmp_path):
    result = run_command("evaluate", f"run={tmp_path}")
    assert result.returncode == 2 and f"`run`='{tmp_path}' is not a main-job run directory" in result.stderr
