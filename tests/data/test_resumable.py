"""ShuffledSampler and ResumableLoader (lightning_hybrid/data/resumable.py): the orders of the loaders they
replace, exactly, and a mid-epoch resume that continues with the next unseen batch."""

import itertools

import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from lightning_hybrid.data.resumable import ResumableLoader, ShuffledSampler, resumable_shuffled

DATA = TensorDataset(torch.arange(50))


def _batches(loader, count=None):
    return [x.tolist() for (x,) in itertools.islice(loader, count)]  # fetches `count` batches, no more


def test_one_replica_draws_what_a_shuffling_dataloader_draws():
    # oracle: DataLoader(shuffle=True, drop_last=True), from the same global RNG state, over two epochs
    torch.manual_seed(7)
    theirs = [_batches(DataLoader(DATA, batch_size=8, shuffle=True, drop_last=True)) for _ in range(2)]
    torch.manual_seed(7)
    loader = resumable_shuffled(DATA, batch_size=8, num_workers=0)
    ours = []
    for epoch in range(2):
        loader.sampler.set_epoch(epoch)
        ours.append(_batches(loader))
    assert ours == theirs
    assert torch.rand(1).item() == pytest.approx(_after_two_shuffled_epochs())  # the same RNG left behind


def _after_two_shuffled_epochs():
    torch.manual_seed(7)
    for _ in range(2):
        _batches(DataLoader(DATA, batch_size=8, shuffle=True, drop_last=True))
    return torch.rand(1).item()


@pytest.mark.parametrize("rank", [0, 1, 2])
def test_several_replicas_draw_what_lightnings_distributed_sampler_draws(rank):
    # oracle: the DistributedSampler Lightning puts into a shuffling loader (seed 0, padded to the replicas)
    theirs = DistributedSampler(DATA, num_replicas=3, rank=rank, shuffle=True, seed=0)
    ours = ShuffledSampler(len(DATA), num_replicas=3, rank=rank, seed=0)
    for epoch in (0, 1):
        theirs.set_epoch(epoch)
        ours.set_epoch(epoch)
        assert list(ours) == list(theirs) and len(ours) == len(theirs)


def test_a_resumed_loader_continues_the_epoch_with_the_next_unseen_batch():
    torch.manual_seed(3)
    uninterrupted = _batches(resumable_shuffled(DATA, batch_size=8, num_workers=0))
    torch.manual_seed(3)
    first = resumable_shuffled(DATA, batch_size=8, num_workers=0)
    seen = _batches(first, count=2)
    state = first.state_dict()
    assert state["served"] == 2 and set(state) == {"epoch", "served", "epoch_seed"}
    torch.manual_seed(99)  # the resumed process's RNG is elsewhere: the saved epoch seed decides the order
    resumed = resumable_shuffled(DATA, batch_size=8, num_workers=0)
    resumed.load_state_dict(state)
    assert seen + _batches(resumed) == uninterrupted
    assert _batches(resumed) != [] and len(_batches(resumed)) == len(uninterrupted)  # the next epoch is whole


def test_the_loader_counts_whole_batches_from_a_batch_sampler():
    class Batches(ShuffledSampler):  # yields lists of indices, as the clustering's sampler does
        def __iter__(self):
            order = list(super().__iter__())
            yield from (order[i : i + 5] for i in range(0, len(order) - 4, 5))

    loader = ResumableLoader(DATA, sampler=Batches(len(DATA)), batch_size=None, collate_fn=lambda b: [DATA[b][0]])
    for i, _ in enumerate(loader):
        if i == 3:
            break
    assert loader.state_dict()["served"] == 4


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="`rank` must be in"):
        ShuffledSampler(10, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="`size` must be"):
        ShuffledSampler(0)
