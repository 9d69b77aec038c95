"""A finished main-job smoke run, trained once per test module that asks for one."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def smoke_run(run_dir: Path, *overrides: str) -> Path:
    """Train the main job's 20-step smoke run into `run_dir` (no progress bar) and return it."""
    cmd = [sys.executable, "-m", "lightning_hybrid.train", f"hydra.run.dir={run_dir}", "experiment=smoke"]
    cmd += ["callbacks.progress_bar=null", *overrides]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return run_dir


def command(module: str, *args: str) -> subprocess.CompletedProcess:
    """`python -m lightning_hybrid.<module> args...` from the checkout."""
    cmd = [sys.executable, "-m", f"lightning_hybrid.{module}", *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
