"""Cluster-aware batches: which dataset indices go together, per epoch, sharded over ranks.

Policies (every one yields batches of exactly `batch_size` indices):
  * random       plain shuffled batches, n // batch_size of them (the baseline).
  * balanced     each batch draws from the clusters in proportion to their sizes (stratified sampling):
                 indices grouped by cluster, then dealt out column-wise, so a cluster of share p gets
                 p x batch_size (+-1) places in every batch. Stratification removes the between-cluster
                 part of the mini-batch gradient variance. n // batch_size batches.
  * uniform      an equal share of every cluster in each batch; small clusters repeat within an epoch,
                 large ones are subsampled. n // batch_size batches.
  * homogeneous  each batch from one cluster: every cluster's shuffled members, chunked; a cluster's
                 last chunk is filled up with its own members again. sum_c ceil(n_c / batch_size) batches.
Empty clusters are ignored. The epoch's global batch list is shuffled, cut to a multiple of the
number of replicas, and rank r takes batches r, r + W, r + 2W, ...: disjoint whole batches, the same
count on every rank, and the same list on every rank because it depends only on (seed, epoch).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data.distributed import DistributedSampler

from lightning_hybrid.utils.checks import choice, non_negative_int, positive_int

POLICIES = ("balanced", "uniform", "homogeneous", "random")


def _random(labels: torch.Tensor, batch_size: int, g: torch.Generator) -> torch.Tensor:
    n_batches = len(labels) // batch_size
    return torch.randperm(len(labels), generator=g)[: n_batches * batch_size].view(n_batches, batch_size)


def _balanced(labels: torch.Tensor, batch_size: int, g: torch.Generator) -> torch.Tensor:
    n_batches = len(labels) // batch_size
    kept = torch.randperm(len(labels), generator=g)[: n_batches * batch_size]
    grouped = kept[torch.sort(labels[kept], stable=True).indices]  # by cluster, random within
    return grouped.view(batch_size, n_batches).T.contiguous()  # batch b = grouped[b::n_batches]


def _cyclic_draw(members: torch.Tensor, count: int, g: torch.Generator) -> torch.Tensor:
    """`count` members, reshuffling the cluster each time it runs out."""
    rounds = -(-count // len(members))
    return torch.cat([members[torch.randperm(len(members), generator=g)] for _ in range(rounds)])[:count]


def _uniform(labels: torch.Tensor, batch_size: int, g: torch.Generator) -> torch.Tensor:
    clusters = torch.unique(labels)
    n_batches = len(labels) // batch_size
    # slot s of the epoch belongs to cluster s mod K: every batch gets batch_size // K of each cluster and
    # the remainder rotates over the clusters from batch to batch
    slot_cluster = torch.arange(n_batches * batch_size) % len(clusters)
    out = torch.empty(n_batches * batch_size, dtype=torch.long)
    for i, c in enumerate(clusters.tolist()):
        slots = (slot_cluster == i).nonzero().reshape(-1)
        out[slots] = _cyclic_draw((labels == c).nonzero().reshape(-1), len(slots), g)
    return out.view(n_batches, batch_size)


def _homogeneous(labels: torch.Tensor, batch_size: int, g: torch.Generator) -> torch.Tensor:
    chunks = []
    for c in torch.unique(labels).tolist():
        members = (labels == c).nonzero().reshape(-1)
        members = members[torch.randperm(len(members), generator=g)]
        short = -len(members) % batch_size
        if short:
            members = torch.cat([members, _cyclic_draw(members, short, g)])
        chunks.append(members.view(-1, batch_size))
    return torch.cat(chunks)


_BUILD = {"random": _random, "balanced": _balanced, "uniform": _uniform, "homogeneous": _homogeneous}


def epoch_batches(labels: torch.Tensor, batch_size: int, policy: str, seed: int, epoch: int) -> torch.Tensor:
    """All batches of one epoch, (num_batches, batch_size) indices, in a shuffled order."""
    choice("policy", policy, POLICIES)
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    batches = _BUILD[policy](labels.cpu().long(), batch_size, g)
    return batches[torch.randperm(len(batches), generator=g)]


def num_global_batches(labels: torch.Tensor, batch_size: int, policy: str) -> int:
    """How many batches `epoch_batches` makes (the same for every epoch)."""
    if policy == "homogeneous":
        sizes = torch.bincount(labels.cpu().long())
        return int((-(-sizes[sizes > 0] // batch_size)).sum())
    return len(labels) // batch_size


class ClusterBatchSampler(DistributedSampler):
    """Yields this rank's batches (lists of dataset indices) of one epoch; `set_epoch` reshuffles.

    Used as a DataLoader's `sampler` with batch_size=None (each item it yields is a whole batch). It
    derives from DistributedSampler because it does that job itself, sharding whole batches over the
    replicas; Lightning therefore leaves it in place instead of wrapping it in its own DistributedSampler
    (which would split the batches apart), so no `use_distributed_sampler=False` is needed.
    """

    def __init__(
        self,
        labels: torch.Tensor,
        batch_size: int,
        policy: str = "balanced",
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        # DistributedSampler.__init__ is not called: it needs an initialised process group and a dataset
        # length of items, and every attribute it would set is set here.
        self.labels = labels.cpu().long()
        self.batch_size = positive_int("batch_size", batch_size)
        self.policy = choice("policy", policy, POLICIES)
        self.seed = non_negative_int("seed", seed)
        self.num_replicas = positive_int("num_replicas", num_replicas)
        if not 0 <= rank < num_replicas:
            raise ValueError(f"`rank` must be in [0, {num_replicas}), got {rank!r}.")
        self.rank, self.epoch, self.shuffle, self.drop_last = rank, 0, True, True
        total = num_global_batches(self.labels, batch_size, policy)
        self.num_samples = total // num_replicas  # batches per rank
        if self.num_samples == 0:
            raise ValueError(
                f"{len(self.labels)} items make {total} batches of batch_size={batch_size} under policy {policy!r}, "
                f"fewer than the {num_replicas} replicas: use a smaller batch_size or more data."
            )
        self.total_size = self.num_samples * num_replicas
        self._resume: tuple[int, int] | None = None  # (epoch, batches already served in it)
        self.skipped = 0  # batches the current iteration skipped (a resumed epoch's served ones)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def resume(self, epoch: int, served: int) -> None:
        """Skip the first `served` batches the next time epoch `epoch` is iterated (mid-epoch resume)."""
        self._resume = (non_negative_int("epoch", epoch), non_negative_int("served", served))

    def _take_skip(self) -> int:
        if self._resume is None or self._resume[0] != self.epoch:
            return 0
        skip, self._resume = self._resume[1], None
        return min(skip, self.num_samples)

    def __iter__(self) -> Iterator[list[int]]:
        # a generator: this body runs at the first next(), after Lightning's set_epoch for the epoch
        self.skipped = self._take_skip()
        batches = epoch_batches(self.labels, self.batch_size, self.policy, self.seed, self.epoch)
        mine = batches[: self.total_size][self.rank :: self.num_replicas]
        for batch in mine[self.skipped :]:
            yield batch.tolist()

    def __len__(self) -> int:
        return self.num_samples
