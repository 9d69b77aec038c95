"""Feature functions for clustering (data/features.py). Oracles: the definition of hashed n-gram counts
(unit rows, equal windows equal rows), the order of the dataset, digests that change with the data."""

import pytest
import torch
from torch.utils.data import TensorDataset

from lightning_hybrid.data import features


def test_hashed_ngrams_are_unit_rows_that_depend_on_content_not_position_of_the_window():
    windows = torch.tensor([[1, 2, 3, 4], [1, 2, 3, 4], [4, 3, 2, 1]])
    rows = features.hash_ngrams(windows, dim=64)
    assert rows.shape == (3, 64)
    torch.testing.assert_close(rows.norm(dim=1), torch.ones(3))
    assert torch.equal(rows[0], rows[1]) and not torch.equal(rows[0], rows[2])
    # 4 unigrams + 3 bigrams + 2 trigrams, all distinct: 9 buckets of count 1 (no collision among 4096),
    # each 1/3 after normalization
    row = features.hash_ngrams(windows[:1], dim=4096)[0]
    assert int((row > 0).sum()) == 9
    torch.testing.assert_close(row[row > 0], torch.full((9,), 1 / 3))


def test_compute_keeps_the_dataset_order_and_checks_what_the_function_returns():
    data = TensorDataset(torch.arange(10.0).reshape(5, 2))
    out = features.compute(data, features.flattened, batch_size=2)
    assert torch.equal(out, torch.arange(10.0).reshape(5, 2))
    with pytest.raises(ValueError, match=r"must return a \(batch size, d\) tensor per batch"):
        features.compute(data, lambda batch: torch.zeros(3), batch_size=2)


def test_the_first_tensor_of_any_batch_shape():
    x = torch.ones(2, 3)
    assert features.first_tensor(x) is x and features.first_tensor({"a": 1, "x": x}) is x
    with pytest.raises(TypeError, match="hold no tensor"):
        features.first_tensor(["text"])


def test_fingerprints_change_with_the_data_and_with_the_features():
    a = TensorDataset(torch.zeros(4, 2))
    b = TensorDataset(torch.ones(4, 2))
    assert features.data_fingerprint(a) == features.data_fingerprint(TensorDataset(torch.zeros(4, 2)))
    assert features.data_fingerprint(a) != features.data_fingerprint(b)
    doubled = features.feature_fingerprint(b, lambda batch: 2 * features.flattened(batch), "f")
    assert doubled != features.feature_fingerprint(b, features.flattened, "f")
