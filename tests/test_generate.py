"""`python -m lightning_hybrid.generate`, the command of jobs/generate.py (tested in tests/jobs/test_generate.py)."""

import lightning_hybrid.generate as command
from helpers.runs import command as run_command
from lightning_hybrid.jobs import generate


def test_the_command_is_the_jobs_main():
    assert command.main is generate.main and command.generate is generate.generate


def test_without_a_run_it_says_which_setting_is_missing():
    result = run_command("generate")
    assert result.returncode != 0 and "run" in result.stderr and "Missing mandatory value" in result.stderr
