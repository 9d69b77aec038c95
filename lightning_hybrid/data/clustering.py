"""Cluster assignments of a dataset: choose k ("auto"), run k-means, cache the result on disk.

A cached file is keyed by a digest of (data fingerprint, feature fingerprint, k or the "auto"
candidates, seed, k-means settings), so any change to the data, the features or the settings makes a
new key instead of reusing a stale clustering.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from lightning_hybrid.utils.kmeans import check_points, kmeans, nearest

AUTO_CANDIDATES = (2, 3, 4, 6, 8, 12, 16)


def default_cache_dir() -> Path:
    """$LIGHTNING_HYBRID_CACHE, else $XDG_CACHE_HOME/lightning_hybrid (~/.cache/lightning_hybrid), + /clusters."""
    root = (
        os.environ.get("LIGHTNING_HYBRID_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")) / "lightning_hybrid"
    )
    return Path(root).expanduser() / "clusters"


@dataclass
class Clustering:
    """labels (n,) int64 and centroids (k, d) of one clustering; `curve` lists the "auto" candidates."""

    labels: torch.Tensor
    centroids: torch.Tensor
    inertia: float
    curve: list[dict[str, float]] = field(default_factory=list)
    key: str = ""
    from_cache: bool = False
    seconds: float = 0.0

    @property
    def num_clusters(self) -> int:
        return len(self.centroids)

    @property
    def sizes(self) -> list[int]:
        return torch.bincount(self.labels, minlength=self.num_clusters).tolist()

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")  # written whole, then renamed: no half file is ever read
        meta = {
            "inertia": repr(self.inertia),
            "curve": json.dumps(self.curve),
            "key": self.key,
            "seconds": repr(self.seconds),
        }
        save_file(
            {"labels": self.labels.cpu().contiguous(), "centroids": self.centroids.cpu().contiguous()},
            tmp,
            metadata=meta,
        )
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> Clustering:
        with safe_open(os.fspath(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in ("labels", "centroids")}
        return cls(
            tensors["labels"],
            tensors["centroids"],
            float(meta["inertia"]),
            json.loads(meta["curve"]),
            meta["key"],
            True,
            float(meta.get("seconds", 0.0)),
        )


def cache_key(data: str, features: str, num_clusters: int | str, seed: int, settings: dict[str, Any]) -> str:
    spec = json.dumps({"data": data, "features": features, "k": num_clusters, "seed": seed, **settings}, sort_keys=True)
    return hashlib.sha256(spec.encode()).hexdigest()[:32]


def silhouette(x: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean silhouette coefficient (Rousseeuw 1987) of the points x (m, d); O(m^2), use a sample.

    A point alone in its cluster scores 0, as in scikit-learn.
    """
    d = torch.cdist(x, x)
    k = int(labels.max()) + 1
    onehot = torch.nn.functional.one_hot(labels, k).to(d.dtype)
    sizes = onehot.sum(dim=0)
    mean_to = (d @ onehot) / sizes.clamp_min(1)  # (m, k): mean distance to each cluster
    own = labels
    own_size = sizes[own]
    a = (d @ onehot).gather(1, own[:, None]).squeeze(1) / (own_size - 1).clamp_min(1)  # excludes itself
    mean_to[:, sizes == 0] = float("inf")
    mean_to.scatter_(1, own[:, None], float("inf"))
    b = mean_to.min(dim=1).values
    s = (b - a) / torch.maximum(a, b).clamp_min(1e-12)
    s[own_size <= 1] = 0.0
    return float(s.mean())


def choose_k(
    x: torch.Tensor,
    candidates: tuple[int, ...] = AUTO_CANDIDATES,
    seed: int = 0,
    score_sample: int = 2000,
    **kmeans_kw: Any,
) -> tuple[int, list[dict[str, float]]]:
    """The candidate k with the highest silhouette on a sample of x, and the curve it chose from."""
    usable = [k for k in candidates if 2 <= k <= len(x) - 1]
    if not usable:
        raise ValueError(f"num_clusters='auto' needs at least 3 items to compare k >= 2, got {len(x)}.")
    g = torch.Generator().manual_seed(seed)
    probe = x[torch.randperm(len(x), generator=g)[:score_sample].to(x.device)]
    curve = []
    for k in usable:
        result = kmeans(x, k, seed=seed, **kmeans_kw)
        labels, _ = nearest(probe, result.centroids)
        curve.append({"k": k, "inertia": result.inertia, "silhouette": silhouette(probe, labels)})
    best = max(curve, key=lambda row: row["silhouette"])
    return int(best["k"]), curve


def cluster(
    features: torch.Tensor,
    num_clusters: int | str,
    seed: int = 0,
    candidates: tuple[int, ...] = AUTO_CANDIDATES,
    **kmeans_kw: Any,
) -> Clustering:
    """k-means of the feature rows; num_clusters="auto" picks k by silhouette first."""
    start = time.perf_counter()
    curve: list[dict[str, float]] = []
    if num_clusters == "auto":
        check_points(features, 1)
        num_clusters, curve = choose_k(features, tuple(candidates), seed, **kmeans_kw)
    result = kmeans(features, num_clusters, seed=seed, **kmeans_kw)
    return Clustering(
        result.labels.cpu(), result.centroids.cpu(), result.inertia, curve, seconds=time.perf_counter() - start
    )


def format_curve(curve: list[dict[str, float]], chosen: int) -> str:
    rows = ["     k   inertia  silhouette"]
    rows += [
        f"  {'*' if r['k'] == chosen else ' '}{r['k']:3d}  {r['inertia']:8.4f}  {r['silhouette']:10.4f}" for r in curve
    ]
    return "\n".join(rows)
