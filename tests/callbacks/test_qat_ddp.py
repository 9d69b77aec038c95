import pytest
import torch

from helpers.ddp import rank_states, run_script


@pytest.mark.slow
def test_two_process_cpu_ddp_ranks_end_with_identical_weights(tmp_path):
    result = run_script("ddp_qat.py", tmp_path)
    rank0, rank1 = rank_states(tmp_path)
    assert rank0["_converted"].item() == rank1["_converted"].item() == 8
    assert rank0["_lambda"].item() == rank1["_lambda"].item() == 1.0
    for key in rank0:
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=0, msg=key)
    assert "converted 8 of 9 linear layers, skipped 1" in result.stdout + result.stderr
