"""The run log (lightning_hybrid/jobs/logs.py): train.log holds the config, the conversion report, the
warnings and the summary that the run printed."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_train_log_holds_what_the_run_printed(tmp_path):
    cmd = [sys.executable, "-m", "lightning_hybrid.train", f"hydra.run.dir={tmp_path}", "experiment=smoke"]
    cmd += ["trainer.max_steps=4", "callbacks.progress_bar=null", "trainer.limit_val_batches=3"]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    log = (tmp_path / "train.log").read_text()
    assert "config:\n" in log and "export_layout: 2bit" in log  # the composed config, in the file only
    assert "export_layout: 2bit" not in result.stdout + result.stderr
    assert "converted 4 of 5 linear layers, skipped 1" in log
    assert "[py.warnings][WARNING]" in log  # Lightning warns about the logging interval of a 4-step run
    assert "lightning_hybrid run summary" in log and "final val loss" in log
