"""k-means lives in lightning_hybrid.utils.kmeans (quant/precision.py uses it too); this path still works."""

from lightning_hybrid.utils.kmeans import BACKENDS, KMeansResult, check_points, kmeans, nearest

__all__ = ["BACKENDS", "KMeansResult", "check_points", "kmeans", "nearest"]
