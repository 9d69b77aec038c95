import pytest
import torch

from helpers.ddp import rank_states, run_script


def _row_ids(inputs, x):
    """Dataset index of every item of every batch (rows of x are distinct)."""
    return [[int((x == row).all(dim=1).nonzero()) for row in batch] for batch in inputs]


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["balanced", "homogeneous"])
def test_two_ranks_train_on_disjoint_whole_batches_without_sampler_settings(tmp_path, policy):
    run_script("ddp_clusters.py", tmp_path, policy)
    r0, r1 = rank_states(tmp_path)
    assert torch.equal(r0["labels"], r1["labels"])  # every rank batches by the same clustering
    assert r0["inputs"].shape == r1["inputs"].shape  # the same number of batches, each of batch_size 10
    ids0, ids1 = _row_ids(r0["inputs"], r0["x"]), _row_ids(r1["inputs"], r1["x"])
    per_epoch = len(ids0) // 2
    for epoch in range(2):
        a = {i for b in ids0[epoch * per_epoch : (epoch + 1) * per_epoch] for i in b}
        b = {i for b in ids1[epoch * per_epoch : (epoch + 1) * per_epoch] for i in b}
        if policy == "balanced":
            assert not a & b  # disjoint within an epoch
    assert ids0[:per_epoch] != ids0[per_epoch:]  # reshuffled per epoch
    for rank in (r0, r1):  # Lightning did not split the batches: each is one cluster when homogeneous
        assert torch.equal(rank["clusters"], rank["labels"][torch.tensor(_row_ids(rank["inputs"], rank["x"]))])
        if policy == "homogeneous":
            assert all(len(set(c.tolist())) == 1 for c in rank["clusters"])
