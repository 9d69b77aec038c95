"""k-means in torch: k-means++ seeding, mini-batch updates, chunked distances (no Lightning).

Lloyd's algorithm needs every point every iteration; mini-batch k-means (Sculley 2010, "Web-scale
k-means clustering") moves each centre towards the mean of the batch points assigned to it with a
per-centre step 1 / (points seen), so a pass over a sample of `batch_size` points costs
batch_size x k distances. Distances are ||x||^2 - 2 x.c + ||c||^2 in chunks of `chunk_size` rows, so
1M x 384 points never materialise a 1M x k matrix. Runs on the points' device (a GPU when they are on
one). The optional faiss backend (`backend="faiss"`) runs faiss's Lloyd k-means on the CPU instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from lightning_hybrid.utils.checks import choice, positive_int

BACKENDS = ("torch", "faiss")


@dataclass
class KMeansResult:
    """centroids (k, d) fp32, labels (n,) int64, inertia = mean squared distance to the own centre."""

    centroids: torch.Tensor
    labels: torch.Tensor
    inertia: float
    reseeded: int = 0  # empty clusters refilled with the farthest points

    @property
    def sizes(self) -> torch.Tensor:
        return torch.bincount(self.labels, minlength=len(self.centroids))


def check_points(x: torch.Tensor, k: int) -> torch.Tensor:
    """2-D finite float points with at least k rows, as fp32; clear errors otherwise."""
    if not isinstance(x, torch.Tensor) or x.dim() != 2:
        raise ValueError(f"k-means needs a 2-D tensor of points (n, d), got {getattr(x, 'shape', type(x).__name__)}.")
    positive_int("num_clusters", k)
    if len(x) < k:
        raise ValueError(f"`num_clusters`={k} is larger than the number of points ({len(x)}): use at most {len(x)}.")
    x = x.float()
    bad = ~torch.isfinite(x).all(dim=1)
    if bool(bad.any()):
        rows = bad.nonzero().reshape(-1)[:5].tolist()
        raise ValueError(
            f"{int(bad.sum())} feature rows are not finite (NaN or inf), e.g. rows {rows}: fix the feature function."
        )
    return x


def nearest(x: torch.Tensor, centroids: torch.Tensor, chunk_size: int = 16384) -> tuple[torch.Tensor, torch.Tensor]:
    """(labels, squared distances) of each row of x to its nearest centroid, `chunk_size` rows at a time."""
    c_sq = centroids.pow(2).sum(dim=1)
    labels = torch.empty(len(x), dtype=torch.long, device=x.device)
    dists = torch.empty(len(x), dtype=torch.float32, device=x.device)
    for start in range(0, len(x), chunk_size):
        chunk = x[start : start + chunk_size]
        d = torch.addmm(c_sq, chunk, centroids.T, alpha=-2.0)  # ||c||^2 - 2 x.c; ||x||^2 added below
        best, idx = d.min(dim=1)
        labels[start : start + chunk_size] = idx
        dists[start : start + chunk_size] = (best + chunk.pow(2).sum(dim=1)).clamp_min(0.0)
    return labels, dists


def kmeans_plus_plus(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007) with 2 + log k candidates per step (greedy, as sklearn)."""
    n_trials = 2 + int(torch.tensor(float(k)).log().item())
    first = torch.randint(len(x), (1,), generator=generator).item()
    centres = [x[first]]
    closest = (x - x[first]).pow(2).sum(dim=1)
    for _ in range(1, k):
        total = closest.sum()
        # all distances 0: every point sits on a centre, the rest are duplicates of chosen points
        probs = torch.ones_like(closest) if total <= 0 else closest / total
        candidates = torch.multinomial(probs.cpu(), n_trials, replacement=True, generator=generator).to(x.device)
        cand_d = torch.cdist(x[candidates], x).pow(2)  # (trials, n)
        new_closest = torch.minimum(closest.unsqueeze(0), cand_d)
        best = int(new_closest.sum(dim=1).argmin())
        centres.append(x[candidates[best]])
        closest = new_closest[best]
    return torch.stack(centres)


def _minibatch_step(x: torch.Tensor, centroids: torch.Tensor, counts: torch.Tensor, chunk_size: int) -> None:
    labels, _ = nearest(x, centroids, chunk_size)
    batch_counts = torch.bincount(labels, minlength=len(centroids)).float()
    sums = torch.zeros_like(centroids).index_add_(0, labels, x)
    hit = batch_counts > 0
    counts += batch_counts
    # c <- c + (sum_batch - n_batch c) / n_total: the running mean of every point the centre has seen
    step = (sums[hit] - batch_counts[hit, None] * centroids[hit]) / counts[hit, None]
    centroids[hit] += step


def _reseed_empty(x: torch.Tensor, centroids: torch.Tensor, labels: torch.Tensor, dists: torch.Tensor) -> int:
    """Move each empty centre onto one of the points farthest from their own centre; return how many."""
    empty = (torch.bincount(labels, minlength=len(centroids)) == 0).nonzero().reshape(-1)
    if len(empty) == 0:
        return 0
    far = dists.topk(len(empty)).indices
    centroids[empty] = x[far]
    return len(empty)


def _check_distinct(x: torch.Tensor, k: int) -> None:
    distinct = len(torch.unique(x, dim=0)) if len(x) <= 200_000 else len(x)
    if distinct < k:
        raise ValueError(
            f"`num_clusters`={k} but the features hold only {distinct} distinct points, so some clusters would stay "
            f"empty: use num_clusters <= {distinct}, or richer features."
        )


def kmeans(
    x: torch.Tensor,
    k: int,
    *,
    seed: int = 0,
    max_iter: int = 100,
    batch_size: int = 4096,
    init_size: int | None = None,
    chunk_size: int = 16384,
    backend: str = "torch",
) -> KMeansResult:
    """Cluster the rows of `x` (n, d) into k groups; deterministic for a given seed and device.

    batch_size: points per mini-batch update (n or more: every update sees all points, i.e. Lloyd).
    max_iter: number of mini-batch updates. init_size: points the k-means++ seeding looks at
    (default min(n, max(3 k, 4096)), as sklearn's MiniBatchKMeans does for the same reason: seeding
    costs k passes over them). Empty clusters after the final assignment are re-seeded from the points
    farthest from their centres and the points re-assigned, so every cluster is non-empty.
    """
    choice("backend", backend, BACKENDS)
    for name, value in (("max_iter", max_iter), ("batch_size", batch_size), ("chunk_size", chunk_size)):
        positive_int(name, value)
    x = check_points(x, k)
    _check_distinct(x, k)
    if backend == "faiss":
        return _faiss_kmeans(x, k, seed, max_iter)
    generator = torch.Generator().manual_seed(seed)
    n_init = min(len(x), init_size or max(3 * k, 4096))
    sample = x[torch.randperm(len(x), generator=generator)[:n_init].to(x.device)]
    centroids = kmeans_plus_plus(sample, k, generator)
    if batch_size >= len(x):
        _lloyd(x, centroids, max_iter, chunk_size)
    else:
        counts = torch.zeros(k, device=x.device)
        for _ in range(max_iter):
            idx = torch.randint(len(x), (batch_size,), generator=generator).to(x.device)
            _minibatch_step(x[idx], centroids, counts, chunk_size)
    return _assign(x, centroids, chunk_size)


def _lloyd(x: torch.Tensor, centroids: torch.Tensor, max_iter: int, chunk_size: int) -> None:
    """Full-batch updates (each centre becomes the mean of its points) until the labels stop changing."""
    previous = None
    for _ in range(max_iter):
        labels, _ = nearest(x, centroids, chunk_size)
        if previous is not None and torch.equal(labels, previous):
            return
        counts = torch.bincount(labels, minlength=len(centroids)).float()
        sums = torch.zeros_like(centroids).index_add_(0, labels, x)
        hit = counts > 0
        centroids[hit] = sums[hit] / counts[hit, None]
        previous = labels


def _assign(x: torch.Tensor, centroids: torch.Tensor, chunk_size: int = 16384) -> KMeansResult:
    """Final labels, with empty clusters re-seeded from the farthest points."""
    labels, dists = nearest(x, centroids, chunk_size)
    reseeded = 0
    for _ in range(len(centroids)):  # each round fills at least one empty cluster; bounded so it cannot spin
        filled = _reseed_empty(x, centroids, labels, dists)
        if not filled:
            break
        reseeded += filled
        labels, dists = nearest(x, centroids, chunk_size)
    return KMeansResult(centroids, labels, float(dists.mean()), reseeded)


def _faiss_kmeans(x: torch.Tensor, k: int, seed: int, max_iter: int) -> KMeansResult:
    try:
        import faiss
    except ImportError as err:
        raise ImportError("backend='faiss' needs faiss: pip install 'lightning_hybrid[faiss]' (faiss-cpu).") from err
    points = x.detach().cpu().contiguous().numpy()
    # faiss's defaults: Lloyd iterations on at most 256 points a centre (a random subsample)
    km = faiss.Kmeans(points.shape[1], k, niter=max_iter, seed=seed)
    km.train(points)
    return _assign(x, torch.from_numpy(km.centroids).to(x.device))
