"""Errors for people (lightning_hybrid/jobs/errors.py): a user's mistake is one line and exit code 2; a bug
still raises with its traceback; HYDRA_FULL_ERROR=1 shows every traceback."""

import subprocess
import sys
from pathlib import Path

import pytest
from hydra.errors import InstantiationException

from lightning_hybrid.jobs.errors import EXIT_CODE, mistake_in, reported
from lightning_hybrid.utils.checks import positive_int

REPO = Path(__file__).resolve().parents[2]


def _check_fails():
    positive_int("batch_size", 0)  # the package's own argument check


def test_a_mistake_raised_by_the_package_is_reported_in_one_line(capsys):
    with pytest.raises(SystemExit) as stop:
        reported(_check_fails)
    assert stop.value.code == EXIT_CODE
    err = capsys.readouterr().err
    assert err.startswith("error: `batch_size` must be") and "Traceback" not in err


def test_the_mistake_is_found_behind_hydras_wrapper_and_a_bug_is_not_a_mistake():
    try:
        try:
            _check_fails()
        except ValueError as cause:
            raise InstantiationException("Error in call to target 'x.Y'") from cause
    except InstantiationException as wrapped:
        assert isinstance(mistake_in(wrapped), ValueError)
    assert mistake_in(ValueError("raised by a library, not by lightning_hybrid")) is None
    wrong = InstantiationException("Error in call to target 'Trainer'")
    wrong.__cause__ = TypeError("Trainer.__init__() got an unexpected keyword argument 'foo'")
    assert mistake_in(wrong) is wrong
    with pytest.raises(ZeroDivisionError):  # a bug raises as it is
        reported(lambda: 1 / 0)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("export_layout=foo", "error: `export_layout` must be one of '2bit', 'base3'; got 'foo'."),
        ("+trainer.no_such_option=1", "unexpected keyword argument 'no_such_option'"),
        (f"data.path={Path(sys.executable).resolve()}", "is a binary file (it holds NUL bytes), not text"),
        (
            "export_formats=[packed,onnx]",
            "`export_formats` must be one of 'packed', 'transformers', 'gguf'; got 'onnx'.",
        ),
        ("export_formats=[transformers]", "save_transformers needs a transformers PreTrainedModel"),  # model=gpt
    ],
)
def test_the_main_job_prints_a_mistake_without_a_traceback_and_fails_fast(tmp_path, override, message):
    cmd = [sys.executable, "-m", "lightning_hybrid.train", f"hydra.run.dir={tmp_path}", "experiment=smoke", override]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == EXIT_CODE and message in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "csv" / "metrics.csv").exists()  # nothing trained
