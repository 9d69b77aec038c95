"""2-process CPU DDP runs for the tests. Lightning's DDP starts its second process by re-running
sys.argv, so a DDP Trainer cannot run inside pytest: each run is a script in tests/scripts/ (sharing
scripts/_ddp.py's Trainer) that saves every rank's state as rank<r>.pt in an output directory."""

import subprocess
import sys
from pathlib import Path

import torch

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def run_script(name: str, *args, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run tests/scripts/<name> with `args`; fail the test with its stderr unless it succeeds."""
    cmd = [sys.executable, str(SCRIPTS / name), *map(str, args)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def rank_states(out_dir: Path) -> tuple[dict, dict]:
    """The states rank 0 and rank 1 saved in `out_dir`."""
    return torch.load(out_dir / "rank0.pt"), torch.load(out_dir / "rank1.pt")
