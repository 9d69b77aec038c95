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


def test_one_replica_draws_what_a_shuffling_dataloader_draws_in_its_first_epoch():
    # oracle: DataLoader(shuffle=True, drop_last=True) from the same global RNG state, and the RNG it leaves
    torch.manual_seed(7)
    theirs = _batches(DataLoader(DATA, batch_size=8, shuffle=True, drop_last=True))
    after_theirs = torch.rand(1).item()
    torch.manual_seed(7)
    assert _batches(resumable_shuffled(DATA, batch_size=8, num_workers=0)) == theirs
    assert torch.rand(1).item() == after_theirs


def test_later_epochs_do_not_depend_on_what_else_drew_from_the_global_rng():
    # a validation loop between epochs takes a seed off the global RNG; the next epoch's order stays
    def two_epochs(draws_between):
        torch.manual_seed(7)
        loader = resumable_shuffled(DATA, batch_size=8, num_workers=0)
        first = _batches(loader)
        torch.rand(draws_between)
        loader.sampler.set_epoch(1)
        return first, _batches(loader)

    (first, second), (_, second_after_draws) = two_epochs(0), two_epochs(5)
    assert second == second_after_draws and second != first


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
    uninterrupted = _two_epochs(resumable_shuffled(DATA, batch_size=8, num_workers=0))
    torch.manual_seed(3)
    first = resumable_shuffled(DATA, batch_size=8, num_workers=0)
    seen = _batches(first, count=2)
    state = first.state_dict()
    assert state["served"] == 2 and set(state) == {"epoch", "served", "epoch_seed", "base_seed"}
    torch.manual_seed(99)  # the resumed process's RNG is elsewhere: the saved seeds decide the orders
    resumed = resumable_shuffled(DATA, batch_size=8, num_workers=0)
    resumed.load_state_dict(state)
    rest, next_epoch = _two_epochs(resumed)
    assert (seen + rest, next_epoch) == uninterrupted
    assert len(next_epoch) == len(uninterrupted[0])  # the next epoch is whole


def _two_epochs(loader):
    first = _batches(loader)
    loader.sampler.set_epoch(1)
    return first, _batches(loader)


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
