import pytest
import torch

from helpers.ddp import rank_states, run_script


@pytest.mark.slow
@pytest.mark.parametrize("heldout_every", [0, 4])
def test_two_process_cpu_ddp_ranks_learn_the_same_scale(tmp_path, heldout_every):
    result = run_script("ddp_learned_scale.py", tmp_path, heldout_every)
    rank0, rank1 = rank_states(tmp_path)
    # Each rank saw other batches; the averaged gradients give every rank the same scale, with no collective
    # (every rank draws the same held-out batches).
    scales = rank0["_scales"]
    assert len(scales) == 16 and scales[-1] > 10 * scales[1] > 0  # it learned
    for key in rank0:
        torch.testing.assert_close(rank0[key], rank1[key], rtol=0, atol=0, msg=key)
    assert "LearnedScale: steps 16" in result.stdout + result.stderr
    if heldout_every:
        assert "heldout_batches 2" in result.stdout + result.stderr  # steps 8 and 12: the second epoch on
