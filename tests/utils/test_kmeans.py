"""k-means (utils/kmeans.py). Oracles: planted clusters (known labels), the brute-force distance matrix."""

import pytest
import torch

from helpers.points import blobs
from lightning_hybrid.utils.kmeans import kmeans, nearest


def _same_partition(a, b):
    # every found cluster maps onto exactly one planted cluster
    pairs = set(zip(a.tolist(), b.tolist()))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


@pytest.mark.parametrize("batch_size", [256, 10_000])  # mini-batch updates, and full-batch Lloyd
def test_recovers_planted_clusters(batch_size):
    x, truth = blobs()
    result = kmeans(x, 5, batch_size=batch_size, seed=1)
    assert _same_partition(result.labels, truth)
    # unit-variance noise in 16 dimensions: the mean squared distance to the true centre is 16
    assert result.inertia == pytest.approx(16.0, rel=0.05)


def test_nearest_matches_brute_force_in_chunks():
    x, c = torch.randn(1000, 7), torch.randn(9, 7)
    labels, dists = nearest(x, c, chunk_size=97)  # chunks that do not divide n
    brute = torch.cdist(x.double(), c.double()).pow(2)
    torch.testing.assert_close(labels, brute.argmin(dim=1))
    torch.testing.assert_close(dists.double(), brute.min(dim=1).values, rtol=1e-4, atol=1e-4)


def test_same_seed_same_result_and_other_seed_other_start():
    x, _ = blobs(k=12, spread=1.0)
    a, b = kmeans(x, 12, seed=3), kmeans(x, 12, seed=3)
    assert torch.equal(a.labels, b.labels) and torch.equal(a.centroids, b.centroids)
    assert not torch.equal(kmeans(x, 12, seed=4).centroids, a.centroids)


def test_every_cluster_is_non_empty():
    # an outlier group far away plus a dense blob: more clusters than the blob needs
    x = torch.cat([torch.randn(2000, 4) * 0.01, torch.randn(3, 4) + 50])
    result = kmeans(x, 20, seed=0)
    assert (result.sizes > 0).all()


def test_faiss_backend_agrees_on_planted_clusters():
    pytest.importorskip("faiss")
    x, truth = blobs()
    assert _same_partition(kmeans(x, 5, backend="faiss").labels, truth)


@pytest.mark.parametrize(
    ("x", "k", "message"),
    [
        (torch.randn(5, 3), 6, r"`num_clusters`=6 is larger than the number of points \(5\)"),
        (torch.randn(5, 3), 0, r"`num_clusters` must be a positive integer, got 0"),
        (torch.tensor([[0.0, float("nan")], [1.0, 1.0]]), 1, r"1 feature rows are not finite .* rows \[0\]"),
        (torch.ones(10, 3), 2, r"only 1 distinct points"),
        (torch.randn(10), 2, r"2-D tensor of points"),
    ],
)
def test_bad_input_is_a_clear_error(x, k, message):
    with pytest.raises(ValueError, match=message):
        kmeans(x, k)
