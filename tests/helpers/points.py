"""Points in planted clusters: the oracle of the k-means and silhouette tests."""

import torch


def blobs(n=3000, k=5, d=16, spread=6.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, d, generator=g) * spread
    truth = torch.randint(k, (n,), generator=g)
    return centres[truth] + torch.randn(n, d, generator=g), truth
