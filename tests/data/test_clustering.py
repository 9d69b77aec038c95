"""Clustering a training set (data/clustering.py): silhouette against scikit-learn, k chosen by it."""

import pytest

from helpers.points import blobs
from lightning_hybrid.data.clustering import choose_k, silhouette


def test_silhouette_matches_scikit_learn():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    x, truth = blobs(n=400, k=4, spread=2.0)
    expected = sklearn_metrics.silhouette_score(x.double().numpy(), truth.numpy())
    assert silhouette(x.double(), truth) == pytest.approx(expected, abs=1e-6)


def test_auto_k_finds_the_planted_number_and_reports_the_curve():
    x, _ = blobs(k=6)
    k, curve = choose_k(x, candidates=(2, 3, 4, 6, 8, 12), seed=0)
    assert k == 6
    assert [row["k"] for row in curve] == [2, 3, 4, 6, 8, 12]
    assert max(curve, key=lambda r: r["silhouette"])["k"] == 6
