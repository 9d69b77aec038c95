"""DigitsDataModule: scikit-learn's handwritten digits (8x8 images, 10 classes) as flat feature vectors.

The non-language workload of the benchmark suite: 1,797 images ship inside scikit-learn (no download).
The split is fixed (its own seed, not the run's), so every run validates on the same images.
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset
from typing_extensions import override

from lightning_hybrid.data.resumable import resumable_shuffled
from lightning_hybrid.utils.checks import in_open_unit, non_negative_int, number, positive_int

SPLIT_SEED = 0


def load_digits_tensors() -> tuple[torch.Tensor, torch.Tensor]:
    """Features scaled to [0, 1] (the pixels are 0..16) and integer labels."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise ImportError("DigitsDataModule needs scikit-learn: pip install 'lightning_hybrid[bench]'") from err
    data = load_digits()
    return torch.tensor(data.data, dtype=torch.float32) / 16.0, torch.tensor(data.target, dtype=torch.long)


class DigitsDataModule(pl.LightningDataModule):
    """Shuffled training batches of `batch_size` from the first (1 - val_fraction) of a fixed
    permutation of the images; the rest validates, in order.

    heldout_fraction: that fraction of the training images is neither trained on nor validated on but
    served by `heldout_dataloader()` (LearnedScale(heldout_every=...) reads its evidence there); 0: none."""

    def __init__(
        self, batch_size: int = 32, val_fraction: float = 0.25, num_workers: int = 0, heldout_fraction: float = 0.0
    ) -> None:
        super().__init__()
        self.batch_size = positive_int("batch_size", batch_size)
        self.val_fraction = in_open_unit("val_fraction", val_fraction)
        self.heldout_fraction = number("heldout_fraction", heldout_fraction, 0.0, 1.0, open_high=True)
        self.num_workers = non_negative_int("num_workers", num_workers)
        x, y = load_digits_tensors()
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(SPLIT_SEED))
        n_val = max(1, round(self.val_fraction * len(y)))
        n_held = round(self.heldout_fraction * (len(y) - n_val))
        if len(y) - n_val - n_held < 1:
            raise ValueError(
                f"val_fraction={val_fraction} and heldout_fraction={heldout_fraction} leave no training image."
            )
        val, held, train = order[:n_val], order[n_val : n_val + n_held], order[n_val + n_held :]
        self.train_set, self.val_set = TensorDataset(x[train], y[train]), TensorDataset(x[val], y[val])
        self.heldout_set = TensorDataset(x[held], y[held])
        self.in_features, self.num_classes = x.shape[1], 10

    def model_kwargs(self) -> dict[str, int]:
        """What the model needs to know about the data (the main job passes it to the model config)."""
        return {"in_features": self.in_features, "num_classes": self.num_classes}

    @override
    def train_dataloader(self) -> DataLoader:
        return resumable_shuffled(self.train_set, self.batch_size, self.num_workers, self.trainer)

    @override
    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=256, num_workers=self.num_workers)

    def heldout_dataloader(self) -> DataLoader:
        """The held-out images in batches of `batch_size` (none unless heldout_fraction > 0)."""
        return DataLoader(self.heldout_set, batch_size=self.batch_size, num_workers=self.num_workers)
