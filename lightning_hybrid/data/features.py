"""Feature functions for clustering a dataset: cheap defaults that need no model, or a user's encoder.

  * `hashed_ngrams`: for token windows (text), counts of hashed 1-, 2- and 3-grams in `dim` buckets
    (the hashing trick, Weinberger et al. 2009), L2-normalised so k-means groups windows by what they
    contain rather than by length. A byte/char window of 64 tokens holds 64 + 63 + 62 n-grams.
  * `flattened`: the item's first tensor, flattened to fp32 (images, tabular rows).
  * any callable batch -> (batch size, d) tensor: e.g. a pretrained sentence encoder's embeddings.

Each function also has a fingerprint (a string) so cached cluster assignments are keyed by the features
that made them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, default_collate

_MULT = 1_000_003  # odd multiplier of the rolling n-gram hash
_MIX = 0x9E3779B1  # Knuth's multiplicative-hash constant: spreads consecutive hashes over the buckets


def hash_ngrams(windows: torch.Tensor, dim: int = 256, orders: tuple[int, ...] = (1, 2, 3)) -> torch.Tensor:
    """(N, L) integer token windows -> (N, dim) fp32 L2-normalised hashed n-gram counts."""
    windows = windows.long()
    counts = torch.zeros(len(windows), dim, dtype=torch.float32, device=windows.device)
    for n in orders:
        if n > windows.shape[1]:
            continue
        h = torch.zeros(len(windows), windows.shape[1] - n + 1, dtype=torch.long, device=windows.device)
        for j in range(n):
            h = h * _MULT + windows[:, j : windows.shape[1] - n + 1 + j] + 1
        buckets = torch.remainder(h * _MIX + n, dim)
        counts.scatter_add_(1, buckets, torch.ones_like(buckets, dtype=torch.float32))
    return counts / counts.norm(dim=1, keepdim=True).clamp_min(1e-12)


def first_tensor(batch: Any) -> torch.Tensor:
    if isinstance(batch, torch.Tensor):
        return batch
    values = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, (list, tuple)) else []
    for value in values:
        if isinstance(value, torch.Tensor):
            return value
    raise TypeError(f"the dataset's items hold no tensor to take features from (a batch is a {type(batch).__name__}).")


def flattened(batch: Any) -> torch.Tensor:
    """The batch's first tensor (the inputs, by the (x, y) convention), one fp32 row per item."""
    x = first_tensor(batch)
    return x.reshape(len(x), -1).float()


def ngrams_of_batch(batch: Any, dim: int = 256) -> torch.Tensor:
    """hash_ngrams of the batch's first tensor (token windows)."""
    return hash_ngrams(first_tensor(batch), dim)


def batches(dataset: Dataset, batch_size: int = 1024) -> Iterator[Any]:
    """The dataset in order, collated (default_collate), `batch_size` items at a time."""
    stacked = getattr(dataset, "stacked", None)  # e.g. text Windows: slices instead of 1 call per item
    if callable(stacked):
        for start in range(0, len(dataset), batch_size):  # type: ignore[arg-type]
            yield stacked(start, min(start + batch_size, len(dataset)))  # type: ignore[arg-type]
        return
    yield from DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=default_collate)


def compute(dataset: Dataset, feature_fn: Callable[[Any], torch.Tensor], batch_size: int = 1024) -> torch.Tensor:
    """feature_fn over the whole dataset in order: (len(dataset), d) fp32 on the CPU."""
    rows = []
    for batch in batches(dataset, batch_size):
        with torch.no_grad():
            out = feature_fn(batch)
        if not isinstance(out, torch.Tensor) or out.dim() != 2 or len(out) != len(first_tensor(batch)):
            raise ValueError(
                f"the feature function must return a (batch size, d) tensor per batch, got "
                f"{getattr(out, 'shape', type(out).__name__)} for a batch of {len(first_tensor(batch))} items."
            )
        rows.append(out.detach().float().cpu())
    return torch.cat(rows)


def tensor_digest(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(str((t.dtype, tuple(t.shape))).encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def data_fingerprint(dataset: Dataset) -> str:
    """The dataset's own `fingerprint()` if it has one (fast), else a digest of every item's tensors."""
    own = getattr(dataset, "fingerprint", None)
    if callable(own):
        return str(own())
    h = hashlib.sha256(str(len(dataset)).encode())  # type: ignore[arg-type]
    for batch in batches(dataset):
        values = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, (list, tuple)) else [batch]
        for value in values:
            if isinstance(value, torch.Tensor):
                h.update(tensor_digest(value).encode())
    return h.hexdigest()


def feature_fingerprint(dataset: Dataset, feature_fn: Callable[[Any], torch.Tensor], name: str) -> str:
    """`name` plus a digest of the features of the first 64 items: a changed encoder changes the key."""
    probe = torch.utils.data.Subset(dataset, range(min(64, len(dataset))))  # type: ignore[arg-type]
    return f"{name}:{tensor_digest(compute(probe, feature_fn))}"
