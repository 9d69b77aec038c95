"""DigitsDataModule: scikit-learn's digits, a fixed split, flat features in [0, 1]."""

import pytest
import torch

from lightning_hybrid.data import DigitsDataModule


def test_the_split_is_fixed_disjoint_and_scaled():
    a, b = DigitsDataModule(val_fraction=0.25), DigitsDataModule(val_fraction=0.25)
    x_train, y_train = a.train_set.tensors
    x_val, y_val = a.val_set.tensors
    assert len(x_train) + len(x_val) == 1797 and len(x_val) == 449  # round(0.25 * 1797)
    torch.testing.assert_close(x_val, b.val_set.tensors[0], rtol=0, atol=0)  # the same images every time
    assert x_train.shape[1] == 64 and x_train.min() >= 0.0 and x_train.max() <= 1.0
    assert set(y_val.tolist()) == set(range(10))
    assert a.model_kwargs() == {"in_features": 64, "num_classes": 10}


def test_batches_and_bad_arguments():
    dm = DigitsDataModule(batch_size=32)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (32, 64) and y.shape == (32,)
    with pytest.raises(ValueError, match="`batch_size` must be a positive integer, got 0"):
        DigitsDataModule(batch_size=0)
    with pytest.raises(ValueError, match="`val_fraction`"):
        DigitsDataModule(val_fraction=1.0)


def test_held_out_images_are_neither_trained_nor_validated_on():
    plain, held = DigitsDataModule(), DigitsDataModule(heldout_fraction=0.1)
    x_val, x_train, x_held = held.val_set.tensors[0], held.train_set.tensors[0], held.heldout_set.tensors[0]
    # oracle: the split by hand: the first round(0.1 * 1348) = 135 of the plain run's 1,348 training images
    # (a fixed permutation) hold out, the rest train, validation is unchanged
    x_plain = plain.train_set.tensors[0]
    assert len(x_held) == 135 and len(plain.heldout_set) == 0
    torch.testing.assert_close(x_held, x_plain[:135], rtol=0, atol=0)
    torch.testing.assert_close(x_train, x_plain[135:], rtol=0, atol=0)
    torch.testing.assert_close(x_val, plain.val_set.tensors[0], rtol=0, atol=0)
    x, y = next(iter(held.heldout_dataloader()))
    assert x.shape == (32, 64) and y.shape == (32,)
    with pytest.raises(ValueError, match="`heldout_fraction` must be"):
        DigitsDataModule(heldout_fraction=-0.1)
