import pytest
import torch

from helpers.ddp import rank_states, run_script


@pytest.mark.slow
def test_two_process_cpu_ddp_ranks_take_the_same_decisions(tmp_path):
    result = run_script("ddp_hybrid.py", tmp_path)
    rank0, rank1 = rank_states(tmp_path)
    # Each rank saw other batches; the reduced loss and synced gradients make every decision equal.
    lrs, radii = rank0["_lrs"], rank0["_radii"]
    assert len(lrs) == 16 and torch.isfinite(radii[3:]).all()
    assert len(set(lrs.tolist())) > 8  # the controller did change the LR
    for key in rank0:
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=0, msg=key)
    assert "AuxLRController: steps 16" in result.stdout + result.stderr
