"""`lightning_hybrid.train`, the main job's command and former module (the job is jobs/train.py; its tests are
tests/jobs/test_train.py): the names it had still import, and the console script points at the job."""

from importlib.metadata import distribution

import lightning_hybrid.train as command
from lightning_hybrid.jobs import configs, train


def test_the_old_names_are_the_jobs_own():
    assert command.main is train.main and command.train is train.train and command.with_teacher is train.with_teacher
    assert command.build_callbacks is configs.build_callbacks and command.config_dir is configs.config_dir


def test_the_console_script_runs_the_same_job():
    scripts = {e.name: e.value for e in distribution("lightning_hybrid").entry_points if e.group == "console_scripts"}
    assert scripts["lightning-hybrid-train"] == "lightning_hybrid.jobs.train:main"
