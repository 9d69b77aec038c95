import pytest
import torch

from helpers.ddp import rank_states, run_script


@pytest.mark.slow
def test_two_process_cpu_ddp_students_agree_and_teachers_stay(tmp_path):
    run_script("ddp_distill.py", tmp_path)
    rank0, rank1 = rank_states(tmp_path)
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
