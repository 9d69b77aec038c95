import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "ddp_qat.py"


@pytest.mark.slow
def test_two_process_cpu_ddp_ranks_end_with_identical_weights(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert rank0["_converted"].item() == rank1["_converted"].item() == 8
    assert rank0["_lambda"].item() == rank1["_lambda"].item() == 1.0
    for key in rank0:
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=0, msg=key)
    assert "converted 8 of 9 linear layers, skipped 1" in result.stdout + result.stderr
