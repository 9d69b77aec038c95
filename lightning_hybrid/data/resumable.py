"""Training loaders a run can be resumed from mid-epoch, continuing with the next unseen batch.

Lightning saves the state of a DataLoader that has `state_dict`/`load_state_dict` in its checkpoints and
hands it back on resume; a plain DataLoader instead replays its epoch from the first batch, in a new
order. `ResumableLoader` is that DataLoader; its sampler (a ShuffledSampler, or the clustering's
ClusterBatchSampler) knows its epoch and skips what was served.

`ShuffledSampler` draws the orders a DataLoader with shuffle=True draws where they do not depend on what
else the run does. Several processes: the DistributedSampler Lightning would put in. One process: the
first epoch is RandomSampler's (its seed taken off torch's global RNG when the iteration begins); a later
epoch's seed is derived from the first's, not drawn again. RandomSampler would draw it from the global RNG,
which validation moves too (every DataLoader iterator takes a seed off it), so how often a run validated
would change which batches its later epochs see.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler

from lightning_hybrid.utils.checks import non_negative_int, positive_int


class ResumableLoader(DataLoader):
    """A DataLoader whose state (epoch, batches served in it, the sampler's own) goes into checkpoints.

    Lightning does not prefetch from a loader with a length, so the batches this iterator has handed out
    are exactly the batches the training loop has used when a checkpoint is written. The sampler yields
    items (batch_size set: a skip of n batches is n x batch_size items) or whole batches (batch_size=None).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._served = 0

    def _unit(self) -> int:
        return self.batch_size or 1  # sampler items per batch

    def __iter__(self):
        self._served = 0
        for i, batch in enumerate(super().__iter__()):
            # the sampler has run by now (worker processes draw indices from it in this process too)
            self._served = self.sampler.skipped // self._unit() + i + 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.sampler.epoch, "served": self._served, **getattr(self.sampler, "position", dict)()}

    def load_state_dict(self, state: dict[str, int]) -> None:
        extra = {k: v for k, v in state.items() if k not in ("epoch", "served")}
        epoch, served = int(state.get("epoch", 0)), int(state.get("served", 0))
        self.sampler.resume(epoch, served * self._unit(), **extra)


class ShuffledSampler(DistributedSampler):
    """This rank's item indices of one epoch in a random order, resumable mid-epoch (module doc).

    One replica: RandomSampler's order in the first epoch served (its seed is drawn from the global RNG at
    the epoch's first batch), then seed + epoch; both seeds are kept for a resume. Several:
    DistributedSampler(shuffle=True, seed)'s, padded to a multiple of the replicas; `seed` defaults to
    Lightning's (PL_GLOBAL_SEED, else 0).
    """

    def __init__(self, size: int, num_replicas: int = 1, rank: int = 0, seed: int | None = None) -> None:
        # DistributedSampler.__init__ is not called: it needs an initialised process group; every
        # attribute it would set is set here.
        self.size = positive_int("size", size)
        self.num_replicas = positive_int("num_replicas", num_replicas)
        if not 0 <= rank < num_replicas:
            raise ValueError(f"`rank` must be in [0, {num_replicas}), got {rank!r}.")
        self.seed = int(os.getenv("PL_GLOBAL_SEED", 0)) if seed is None else non_negative_int("seed", seed)
        self.rank, self.epoch, self.shuffle, self.drop_last = rank, 0, True, False
        self.num_samples = math.ceil(size / num_replicas)
        self.total_size = self.num_samples * num_replicas
        self.base_seed: int | None = None  # one replica: the drawn seed, from which every epoch's follows
        self.epoch_seed: int | None = None  # one replica: the seed of the epoch being served
        self.skipped = 0  # items the current iteration skipped (a resumed epoch's served ones)
        self._resume: tuple[int, int, int | None] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def position(self) -> dict[str, int]:
        seeds = {"epoch_seed": self.epoch_seed, "base_seed": self.base_seed}
        return {name: seed for name, seed in seeds.items() if seed is not None}

    def resume(self, epoch: int, served: int, epoch_seed: int | None = None, base_seed: int | None = None) -> None:
        """Skip the first `served` items the next time epoch `epoch` is iterated, in that epoch's order."""
        self._resume = (non_negative_int("epoch", epoch), non_negative_int("served", served), epoch_seed)
        if base_seed is not None:  # a checkpoint from before base seeds were kept has none
            self.base_seed = int(base_seed)

    def _order(self, epoch_seed: int | None) -> list[int]:
        if self.num_replicas == 1:
            if epoch_seed is None:
                epoch_seed = self._next_epoch_seed()
            self.epoch_seed = epoch_seed
            return torch.randperm(self.size, generator=torch.Generator().manual_seed(epoch_seed)).tolist()
        order = torch.randperm(self.size, generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist()
        order += (order * math.ceil(self.total_size / self.size))[: self.total_size - self.size]
        return order[self.rank : self.total_size : self.num_replicas]

    def _next_epoch_seed(self) -> int:
        if self.base_seed is None:  # what RandomSampler draws, taken once and kept for the epoch
            self.base_seed = int(torch.empty((), dtype=torch.int64).random_().item()) - self.epoch
        return self.base_seed + self.epoch

    def __iter__(self) -> Iterator[int]:
        # a generator: this body runs at the first next(), after Lightning's set_epoch for the epoch
        skip, seed = 0, None
        if self._resume is not None and self._resume[0] == self.epoch:
            skip, seed = self._resume[1], self._resume[2]
        self._resume = None
        order = self._order(seed)
        self.skipped = min(skip, len(order))
        yield from order[self.skipped :]

    def __len__(self) -> int:
        return self.num_samples


def resumable_shuffled(dataset: Any, batch_size: int, num_workers: int, trainer: Any = None) -> ResumableLoader:
    """What DataLoader(dataset, batch_size, shuffle=True, drop_last=True) gives, made resumable; sharded
    over the trainer's processes (`trainer`: the datamodule's, None outside a Trainer)."""
    replicas, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
    sampler = ShuffledSampler(len(dataset), replicas, rank)
    return ResumableLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers, drop_last=True)
