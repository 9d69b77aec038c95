import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "ddp_clusters.py"


def _row_ids(inputs, x):
    """Dataset index of every item of every batch (rows of x are distinct)."""
    return [[int((x == row).all(dim=1).nonzero()) for row in batch] for batch in inputs]


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["balanced", "homogeneous"])
def test_two_ranks_train_on_disjoint_whole_batches_without_sampler_settings(tmp_path, policy):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path), policy], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    r0, r1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
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
