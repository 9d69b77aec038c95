"""Corpora, DataModules, k-means and cluster-aware batches."""

from lightning_hybrid.data.batches import ClusteredBatch
from lightning_hybrid.data.cluster_module import ClusterDataModule, ClusteredTextDataModule
from lightning_hybrid.data.corpora import read_bytes, stdlib_dir
from lightning_hybrid.data.digits import DigitsDataModule
from lightning_hybrid.data.kmeans import KMeansResult, kmeans  # the function, imported after its module
from lightning_hybrid.data.sampler import POLICIES, ClusterBatchSampler
from lightning_hybrid.data.text import TextDataModule

__all__ = [
    "POLICIES",
    "ClusterBatchSampler",
    "ClusterDataModule",
    "ClusteredBatch",
    "ClusteredTextDataModule",
    "DigitsDataModule",
    "KMeansResult",
    "TextDataModule",
    "kmeans",
    "read_bytes",
    "stdlib_dir",
]
