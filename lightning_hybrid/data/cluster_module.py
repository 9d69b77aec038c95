"""ClusterDataModule: k-means-cluster a training set once, then build cluster-aware batches."""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch.utils.data import DataLoader, Dataset
from typing_extensions import override

from lightning_hybrid.data import features as feats
from lightning_hybrid.data.batches import ClusteredItems, keep_as_is
from lightning_hybrid.data.clustering import (
    AUTO_CANDIDATES,
    Clustering,
    cache_key,
    cluster,
    default_cache_dir,
    format_curve,
)
from lightning_hybrid.data.resumable import ResumableLoader
from lightning_hybrid.data.sampler import POLICIES, ClusterBatchSampler
from lightning_hybrid.data.text import TextDataModule
from lightning_hybrid.utils.checks import choice, integer, non_negative_int, positive_int
from lightning_hybrid.utils.kmeans import BACKENDS

FEATURES = ("auto", "ngrams", "flattened")


class ClusterDataModule(pl.LightningDataModule):
    """Cluster a training set by k-means on its features and serve batches under a cluster policy.

    Args:
        data: the training set (any map-style Dataset), or a LightningDataModule whose training set is
            clustered (its validation and test loaders are used as they are; `vocab_size` and other
            attributes are read through).
        val_data: a validation Dataset (when `data` is a Dataset).
        num_clusters: k, or "auto" to choose among `auto_candidates` by silhouette on a 2000-item sample
            (the curve is printed and kept in `self.clustering.curve`).
        policy: "balanced", "uniform", "homogeneous" or "random" (lightning_hybrid/data/sampler.py).
        batch_size: items per batch (None: the wrapped DataModule's `batch_size`).
        features: "ngrams" (hashed byte n-gram counts of token windows), "flattened" (the inputs, as
            vectors), "auto" (ngrams for integer inputs, flattened otherwise), or a callable mapping a
            collated batch to a (batch size, d) tensor, e.g. a pretrained encoder's embeddings.
        feature_name: names a callable `features` in the cache key (the key also holds a digest of its
            output on the first 64 items, so a changed encoder never reuses old clusters).
        cache: keep assignments on disk and reuse them; cache_dir: where (None: default_cache_dir()).
        seed: k-means and batch order.
        kmeans_iters, kmeans_batch_size, backend: k-means settings ("torch" or "faiss"); k-means runs
            on `device` (None: the Trainer's device for this rank, or cuda when available).
        cluster_key: dict items get the ids under this key; tuple items in `batch.cluster`.
        attach_cluster: False leaves batches exactly as the collate function makes them.
    Under DDP every rank gets disjoint whole batches, the same number each; Lightning leaves the
    sampler alone (it is a DistributedSampler), so `use_distributed_sampler` needs no change.
    """

    def __init__(
        self,
        data: Dataset | pl.LightningDataModule,
        val_data: Dataset | None = None,
        num_clusters: int | str = 8,
        policy: str = "balanced",
        batch_size: int | None = None,
        features: str | Callable[[Any], torch.Tensor] = "auto",
        feature_name: str | None = None,
        feature_dim: int = 256,
        cache: bool = True,
        cache_dir: str | os.PathLike | None = None,
        seed: int = 0,
        kmeans_iters: int = 100,
        kmeans_batch_size: int = 4096,
        backend: str = "torch",
        device: str | None = None,
        auto_candidates: Sequence[int] = AUTO_CANDIDATES,
        cluster_key: str = "cluster",
        attach_cluster: bool = True,
        collate_fn: Callable[[list[Any]], Any] | None = None,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        if not isinstance(data, (Dataset, pl.LightningDataModule)):
            raise TypeError(f"`data` must be a map-style Dataset or a LightningDataModule, got {type(data).__name__}.")
        self.data, self.val_data = data, val_data
        self.num_clusters = integer("num_clusters", num_clusters, 1, allowed=("auto",))
        self.policy = choice("policy", policy, POLICIES)
        if batch_size is None:
            batch_size = getattr(data, "batch_size", None)
            if batch_size is None:
                raise ValueError("`batch_size` is None and the wrapped data has no `batch_size`: give batch_size.")
        self.batch_size = positive_int("batch_size", batch_size)
        if not callable(features):
            choice("features", features, FEATURES)
        self.features, self.feature_name = features, feature_name
        self.feature_dim = positive_int("feature_dim", feature_dim)
        self.cache, self.cache_dir = bool(cache), Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self.seed = non_negative_int("seed", seed)
        self.kmeans_settings = {
            "max_iter": positive_int("kmeans_iters", kmeans_iters),
            "batch_size": positive_int("kmeans_batch_size", kmeans_batch_size),
            "backend": choice("backend", backend, BACKENDS),
        }
        self.device = device
        self.auto_candidates = tuple(positive_int("auto_candidates", int(k)) for k in auto_candidates)
        self.cluster_key, self.attach_cluster = cluster_key, bool(attach_cluster)
        self.collate_fn, self.num_workers = collate_fn, non_negative_int("num_workers", num_workers)
        self.clustering: Clustering | None = None
        self._prepared: Clustering | None = None
        self._train_set: Dataset | None = None

    # -- data -------------------------------------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        # vocab_size and the like of a wrapped DataModule (only reached when normal lookup fails)
        data = self.__dict__.get("data")
        if isinstance(data, pl.LightningDataModule) and not name.startswith("_"):
            return getattr(data, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def train_set(self) -> Dataset:
        if self._train_set is None:
            if isinstance(self.data, pl.LightningDataModule):
                self.data.setup("fit")
                self._train_set = self.data.train_dataloader().dataset
            else:
                self._train_set = self.data
        if len(self._train_set) < 2:  # type: ignore[arg-type]
            count = len(self._train_set)  # type: ignore[arg-type]
            raise ValueError(f"the training set has {count} item(s); clustering needs at least 2.")
        return self._train_set

    def _feature_fn(self, dataset: Dataset) -> tuple[Callable[[Any], torch.Tensor], str]:
        if callable(self.features):
            name = self.feature_name or getattr(self.features, "__qualname__", type(self.features).__name__)
            return self.features, feats.feature_fingerprint(dataset, self.features, name)
        kind = self.features
        if kind == "auto":
            first = feats.first_tensor(next(feats.batches(torch.utils.data.Subset(dataset, [0]), 1)))
            kind = "flattened" if first.is_floating_point() else "ngrams"
        if kind == "ngrams":
            return (lambda batch: feats.ngrams_of_batch(batch, self.feature_dim)), f"ngrams:{self.feature_dim}"
        return feats.flattened, "flattened"

    # -- clustering -------------------------------------------------------------------------------------
    def _cache_path(self, key: str) -> Path:
        return self.cache_dir / f"{key}.safetensors"

    def compute_clustering(self) -> Clustering:
        """Load the cached assignments for this data, features and settings, or compute and cache them."""
        dataset = self.train_set()
        fn, feature_fp = self._feature_fn(dataset)
        settings = {
            **self.kmeans_settings,
            "candidates": list(self.auto_candidates) if self.num_clusters == "auto" else None,
        }
        key = cache_key(feats.data_fingerprint(dataset), feature_fp, self.num_clusters, self.seed, settings)
        path = self._cache_path(key)
        if self.cache and path.is_file():
            return Clustering.load(path)
        x = feats.compute(dataset, fn)
        device = self.device or self._default_device()
        result = cluster(x.to(device), self.num_clusters, self.seed, self.auto_candidates, **self.kmeans_settings)
        result.key = key
        if self.cache:
            result.save(path)
        return result

    def _default_device(self) -> torch.device | str:
        """This rank's accelerator when a Trainer runs on one, else cuda when available, else the CPU."""
        if self.trainer is not None:
            return self.trainer.strategy.root_device
        return "cuda" if torch.cuda.is_available() else "cpu"

    @override
    def prepare_data(self) -> None:
        if isinstance(self.data, pl.LightningDataModule):
            self.data.prepare_data()
        if self.cache:  # one process per node computes; setup() on the other ranks reads the file
            self._prepared = self.compute_clustering()

    @override
    def setup(self, stage: str | None = None) -> None:
        if isinstance(self.data, pl.LightningDataModule):
            self.data.setup(stage)
        if stage not in (None, "fit") or self.clustering is not None:
            return
        clustering = self._prepared or self.compute_clustering()
        trainer = self.trainer
        if trainer is not None and trainer.world_size > 1:  # every rank batches by rank 0's labels
            clustering.labels = trainer.strategy.broadcast(clustering.labels, src=0)
        self.clustering = clustering
        self._report(clustering)

    def _report(self, c: Clustering) -> None:
        source = f"cached {self._cache_path(c.key)}" if c.from_cache else f"computed in {c.seconds:.1f} s"
        text = f"ClusterDataModule: {c.num_clusters} clusters of {len(c.labels)} items ({source}), sizes {c.sizes}"
        if c.curve:
            curve = format_curve(c.curve, c.num_clusters)
            text += f"\n  num_clusters='auto' chose k={c.num_clusters} (highest silhouette):\n{curve}"
        rank_zero_info(text)
        if 0 in c.sizes:
            rank_zero_warn(
                f"ClusterDataModule: {c.sizes.count(0)} of {c.num_clusters} clusters are empty; "
                "the batch policies ignore them."
            )

    # -- loaders ----------------------------------------------------------------------------------------
    def sampler(self) -> ClusterBatchSampler:
        if self.clustering is None:
            raise RuntimeError("ClusterDataModule has no clustering yet: call setup('fit') first (the Trainer does).")
        trainer = self.trainer
        replicas, rank = (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)
        return ClusterBatchSampler(self.clustering.labels, self.batch_size, self.policy, self.seed, replicas, rank)

    @override
    def train_dataloader(self) -> DataLoader:
        items = ClusteredItems(
            self.train_set(), self.clustering.labels, self.collate_fn, self.cluster_key, self.attach_cluster
        )
        return ResumableLoader(
            items,
            sampler=self.sampler(),
            batch_size=None,
            collate_fn=keep_as_is,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    @override
    def val_dataloader(self) -> Any:
        if isinstance(self.data, pl.LightningDataModule):
            return self.data.val_dataloader()
        if self.val_data is None:
            return []
        return DataLoader(
            self.val_data,
            batch_size=self.batch_size,
            shuffle=False,
            collate_fn=self.collate_fn,
            num_workers=self.num_workers,
        )

    def heldout_dataloader(self) -> DataLoader:
        """The wrapped DataModule's held-out batches (LearnedScale(heldout_every=...)); only a DataModule has them."""
        heldout = getattr(self.data, "heldout_dataloader", None)
        if not callable(heldout):
            raise ValueError(
                f"ClusterDataModule wraps a {type(self.data).__name__}, which has no heldout_dataloader(): wrap a "
                "DataModule that has one (TextDataModule(heldout_fraction=...)), or drop LearnedScale's heldout_every."
            )
        return heldout()

    @override
    def test_dataloader(self) -> Any:
        if isinstance(self.data, pl.LightningDataModule):
            return self.data.test_dataloader()
        return []

    @override
    def state_dict(self) -> dict[str, Any]:
        """What the batches were built from; a resume with other clusters or policy is refused."""
        if self.clustering is None:
            return {}
        return {
            "cluster_key_digest": self.clustering.key,
            "num_clusters": self.clustering.num_clusters,
            "policy": self.policy,
        }

    @override
    def load_state_dict(self, state: dict[str, Any]) -> None:
        # Lightning restores this after setup(), so the clustering of this run is known here
        saved = state.get("cluster_key_digest")
        now = self.state_dict()
        if saved and now and (saved, state.get("policy")) != (now["cluster_key_digest"], now["policy"]):
            raise ValueError(
                f"The checkpoint's batches came from clustering {saved} with policy {state.get('policy')!r}; this "
                f"ClusterDataModule has {now['cluster_key_digest']} with policy {now['policy']!r} (other data, "
                "features, num_clusters, seed or policy). Resume with the same settings."
            )


class ClusteredTextDataModule(ClusterDataModule):
    """ClusterDataModule over a TextDataModule's training windows, with every argument flat (Hydra's
    `data=clustered`): TextDataModule's arguments (path, tokenizer, block_size, batch_size, ...) plus the
    ClusterDataModule ones, all given by name; batch_size and num_workers serve both."""

    def __init__(self, path: str | os.PathLike | None = None, **arguments: Any) -> None:
        text_names = set(inspect.signature(TextDataModule).parameters)
        text = TextDataModule(path, **{k: v for k, v in arguments.items() if k in text_names})
        cluster_args = {k: v for k, v in arguments.items() if k not in text_names}
        super().__init__(text, batch_size=text.batch_size, num_workers=text.num_workers, **cluster_args)
