"""Cluster ids attached to batches (data/batches.py): tuples keep unpacking, dicts get a key, moves keep the ids."""

import pytest
import torch
from torch.utils.data import TensorDataset

from lightning_hybrid.data.batches import ClusteredBatch, ClusteredItems, attach


def test_a_tuple_batch_unpacks_as_before_and_carries_its_ids():
    x, y = torch.zeros(3, 2), torch.ones(3)
    batch = attach((x, y), torch.tensor([2, 0, 2]), "cluster")
    bx, by = batch
    assert bx is x and by is y and batch.cluster.tolist() == [2, 0, 2]


def test_moving_a_batch_casts_its_tensors_but_not_its_ids():
    batch = ClusteredBatch((torch.zeros(2, 2), torch.ones(2)), torch.tensor([1, 1]))
    moved = batch.to(torch.float64)
    assert moved[0].dtype == torch.float64 and moved.cluster.dtype == torch.int64


def test_a_dict_batch_gets_the_ids_under_its_key_and_a_clash_is_named():
    out = attach({"x": torch.zeros(2)}, torch.tensor([0, 1]), "cid")
    assert out["cid"].tolist() == [0, 1]
    with pytest.raises(ValueError, match="already have a 'cid' entry: pass another `cluster_key`"):
        attach({"cid": 1}, torch.tensor([0]), "cid")
    with pytest.raises(ValueError, match="applies to dict items only"):
        attach((torch.zeros(1),), torch.tensor([0]), "cid")
    with pytest.raises(TypeError, match="cannot attach cluster ids to a batch of type Tensor"):
        attach(torch.zeros(1), torch.tensor([0]), "cluster")


def test_clustered_items_return_whole_collated_batches_with_their_labels():
    data = TensorDataset(torch.arange(6.0).reshape(6, 1), torch.arange(6))
    items = ClusteredItems(data, torch.tensor([0, 1, 0, 1, 2, 2]))
    x, y = items[[4, 1]]
    assert x.tolist() == [[4.0], [1.0]] and y.tolist() == [4, 1] and items[[4, 1]].cluster.tolist() == [2, 1]
    assert len(items) == 6
    bare = ClusteredItems(data, torch.zeros(6, dtype=torch.long), attach_cluster=False)
    assert not isinstance(bare[[0]], ClusteredBatch)
