"""Batches that carry their items' cluster ids, without changing what the training step unpacks.

A tuple batch (x, y) becomes a ClusteredBatch: still the tuple (x, y) for `x, y = batch`, with the ids
in `batch.cluster`; a dict batch gets them under its own key. Lightning moves a ClusteredBatch to the
device through its `.to()`, which keeps the ids. (A precision plugin that rebuilds tuples, e.g.
"bf16-true" casting the inputs, returns a plain tuple: the ids are then absent and AuxLRController
runs without them.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset, default_collate


class ClusteredBatch(tuple):
    """A tuple batch with the cluster id of every item in `.cluster` (int64, one per item)."""

    def __new__(cls, items: Sequence[Any], cluster: torch.Tensor | None = None) -> ClusteredBatch:
        batch = super().__new__(cls, items)
        batch.cluster = cluster
        return batch

    def to(self, *args: Any, **kwargs: Any) -> ClusteredBatch:
        moved = [v.to(*args, **kwargs) if hasattr(v, "to") else v for v in self]
        cluster = self.cluster
        if cluster is not None:  # follows the batch's device; stays int64 whatever dtype was asked for
            cluster = cluster.to(*args, **kwargs).to(cluster.dtype)
        return ClusteredBatch(moved, cluster)


def attach(batch: Any, ids: torch.Tensor, key: str) -> Any:
    """`batch` with the cluster ids attached (see the module docstring)."""
    if isinstance(batch, dict):
        if key in batch:
            raise ValueError(f"the dataset's items already have a {key!r} entry: pass another `cluster_key`.")
        return {**batch, key: ids}
    if isinstance(batch, (tuple, list)):
        if key != "cluster":
            raise ValueError(
                f"a tuple batch carries its ids in `batch.cluster`; `cluster_key`={key!r} applies to dict items only."
            )
        return ClusteredBatch(batch, ids)
    raise TypeError(
        f"cannot attach cluster ids to a batch of type {type(batch).__name__}: make the dataset return tuples or "
        "dicts, or pass attach_cluster=False."
    )


class ClusteredItems(Dataset):
    """Indexed by a list of dataset indices: returns that whole batch, collated, with its cluster ids."""

    def __init__(
        self,
        dataset: Dataset,
        labels: torch.Tensor,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        cluster_key: str = "cluster",
        attach_cluster: bool = True,
    ) -> None:
        self.dataset, self.labels = dataset, labels.cpu().long()
        self.collate_fn = collate_fn or default_collate
        self.cluster_key, self.attach_cluster = cluster_key, attach_cluster

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, indices: list[int]) -> Any:
        batch = self.collate_fn([self.dataset[i] for i in indices])
        if not self.attach_cluster:
            return batch
        return attach(batch, self.labels[indices], self.cluster_key)


def keep_as_is(batch: Any) -> Any:
    """The DataLoader's collate_fn when the dataset already returns whole batches (a module-level
    function, so DataLoader workers can pickle it)."""
    return batch
