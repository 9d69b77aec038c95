"""Batch policies and DDP sharding. Oracles: counting (sizes, shares, coverage), exact set identities."""

import pytest
import torch

from lightning_hybrid.data.sampler import POLICIES, ClusterBatchSampler, epoch_batches, num_global_batches

# 3 clusters of very different sizes: 600, 300 and 100 items, interleaved
LABELS = torch.tensor([0] * 600 + [1] * 300 + [2] * 100)[
    torch.randperm(1000, generator=torch.Generator().manual_seed(0))
]


def _clusters_per_batch(batches):
    return [LABELS[b] for b in batches]


@pytest.mark.parametrize("policy", POLICIES)
def test_every_batch_is_full_and_the_count_is_announced(policy):
    batches = epoch_batches(LABELS, 10, policy, seed=0, epoch=0)
    assert batches.shape == (num_global_batches(LABELS, 10, policy), 10)


def test_random_and_balanced_use_each_item_at_most_once():
    for policy in ("random", "balanced"):
        flat = epoch_batches(LABELS, 10, policy, 0, 0).reshape(-1)
        assert len(flat) == 1000 and len(set(flat.tolist())) == 1000


def test_balanced_batches_hold_each_cluster_in_proportion():
    for ids in _clusters_per_batch(epoch_batches(LABELS, 10, "balanced", 0, 0)):
        assert torch.bincount(ids, minlength=3).tolist() == [6, 3, 1]  # 60 / 30 / 10 % of 10, exactly


def test_uniform_batches_give_every_cluster_an_equal_share():
    for ids in _clusters_per_batch(epoch_batches(LABELS, 9, "uniform", 0, 0)):
        assert torch.bincount(ids, minlength=3).tolist() == [3, 3, 3]


def test_homogeneous_batches_come_from_one_cluster_and_cover_every_item():
    batches = epoch_batches(LABELS, 32, "homogeneous", 0, 0)
    assert all(len(set(ids.tolist())) == 1 for ids in _clusters_per_batch(batches))
    assert set(batches.reshape(-1).tolist()) == set(range(1000))
    assert len(batches) == 19 + 10 + 4  # ceil(600/32) + ceil(300/32) + ceil(100/32)


def test_epochs_reshuffle_and_seeds_differ():
    a, b = epoch_batches(LABELS, 10, "balanced", 0, 0), epoch_batches(LABELS, 10, "balanced", 0, 1)
    assert not torch.equal(a, b)
    assert torch.equal(a, epoch_batches(LABELS, 10, "balanced", 0, 0))
    assert not torch.equal(a, epoch_batches(LABELS, 10, "balanced", 1, 0))


def test_empty_clusters_are_ignored():
    labels = torch.tensor([0] * 50 + [3] * 50)  # clusters 1 and 2 are empty
    for policy in POLICIES:
        batches = epoch_batches(labels, 10, policy, 0, 0)
        assert set(labels[batches].reshape(-1).tolist()) == {0, 3}


@pytest.mark.parametrize("policy", POLICIES)
def test_ranks_get_disjoint_whole_batches_of_equal_count(policy):
    samplers = [ClusterBatchSampler(LABELS, 10, policy, seed=0, num_replicas=3, rank=r) for r in range(3)]
    per_rank = [list(s) for s in samplers]
    assert len({len(b) for b in per_rank}) == 1 and len(per_rank[0]) == len(samplers[0])
    everything = epoch_batches(LABELS, 10, policy, 0, 0)[: 3 * len(samplers[0])].tolist()
    # the union over ranks is the epoch's batch list, each whole batch on exactly one rank
    assert sorted(b for rank in per_rank for b in rank) == sorted(everything)


def test_resume_skips_the_served_batches_of_that_epoch_only():
    full = list(ClusterBatchSampler(LABELS, 10, "balanced", seed=0))
    sampler = ClusterBatchSampler(LABELS, 10, "balanced", seed=0)
    sampler.resume(epoch=0, served=7)
    assert list(sampler) == full[7:] and sampler.skipped == 7
    assert list(sampler) == full  # the next pass of the same epoch is whole again
    sampler.resume(epoch=1, served=7)
    assert list(sampler) == full  # still epoch 0: nothing skipped


def test_more_replicas_than_batches_is_a_clear_error():
    with pytest.raises(ValueError, match=r"make 2 batches of batch_size=10 .* fewer than the 3 replicas"):
        ClusterBatchSampler(torch.zeros(20, dtype=torch.long), 10, "random", num_replicas=3)


def test_unknown_policy_is_a_clear_error():
    with pytest.raises(
        ValueError, match=r"`policy` must be one of 'balanced', 'uniform', 'homogeneous', 'random'; got 'stratified'"
    ):
        ClusterBatchSampler(LABELS, 10, "stratified")
