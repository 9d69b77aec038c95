"""lightning_hybrid.data.kmeans, the former home of k-means (now utils/kmeans.py), still gives it."""

import importlib

from lightning_hybrid import data
from lightning_hybrid.utils import kmeans


def test_the_old_import_paths_give_the_same_objects():
    old = importlib.import_module("lightning_hybrid.data.kmeans")  # `data.kmeans` is the function itself
    for name in old.__all__:
        assert getattr(old, name) is getattr(kmeans, name)
    assert data.kmeans is kmeans.kmeans and data.KMeansResult is kmeans.KMeansResult
