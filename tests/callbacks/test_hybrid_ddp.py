import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "ddp_hybrid.py"


@pytest.mark.slow
def test_two_process_cpu_ddp_ranks_take_the_same_decisions(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    # Each rank saw other batches; the reduced loss and synced gradients make every decision equal.
    lrs, radii = rank0["_lrs"], rank0["_radii"]
    assert len(lrs) == 16 and torch.isfinite(radii[3:]).all()
    assert len(set(lrs.tolist())) > 8  # the controller did change the LR
    for key in rank0:
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=0, msg=key)
    assert "AuxLRController: steps 16" in result.stdout + result.stderr
