import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "ddp_distill.py"


@pytest.mark.slow
def test_two_process_cpu_ddp_students_agree_and_teachers_stay(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    students = [k for k in rank0 if k.startswith("student.")]
    for key in students:  # DDP averaged the student's gradients: identical weights on both ranks
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=0, msg=key)
    moved = [k for k in students if not torch.equal(rank0[k], rank0["teacher." + k.removeprefix("student.")])]
    assert moved  # the student trained away from the teacher's weights it started from
    for key in (k for k in rank0 if k.startswith("teacher.")):  # the frozen teacher is where it began
        for state in (rank0, rank1):
            torch.testing.assert_close(
                state[key], rank0["teacher_before." + key.removeprefix("teacher.")], rtol=0, atol=0
            )
    assert torch.isfinite(rank0["_kl"])
