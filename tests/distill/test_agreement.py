"""Embedding agreement metrics and mean pooling, against hand-computed oracles."""

import pytest
import torch
import torch.nn.functional as F

from lightning_hybrid.distill.agreement import mean_cosine, nearest_other, top1_agreement
from lightning_hybrid.distill.sentence import MeanPool


def test_mean_cosine_of_identical_orthogonal_and_opposite_rows():
    t = torch.eye(3)
    assert mean_cosine(t, 2 * t) == pytest.approx(1.0, abs=1e-12)
    assert mean_cosine(t, t.roll(1, dims=1)) == pytest.approx(0.0, abs=1e-12)
    assert mean_cosine(t, torch.stack([t[0], t[1], -t[2]])) == pytest.approx(1 / 3, abs=1e-12)


def test_nearest_other_excludes_the_row_itself():
    # unit vectors at 0, 10, 30 and 90 degrees: the neighbours read off the angles
    angles = torch.tensor([0.0, 10.0, 30.0, 90.0]).deg2rad()
    points = torch.stack([angles.cos(), angles.sin()], dim=1)
    assert nearest_other(points).tolist() == [1, 0, 1, 2]


def test_top1_agreement_counts_rows_with_the_same_neighbour():
    angles = torch.tensor([0.0, 10.0, 30.0, 90.0]).deg2rad()
    teacher = torch.stack([angles.cos(), angles.sin()], dim=1)
    rotated = teacher @ torch.tensor([[0.0, -1.0], [1.0, 0.0]])  # a rotation keeps every neighbour
    assert top1_agreement(teacher, rotated) == 1.0
    moved = torch.tensor(
        [0.0, 10.0, 60.0, 65.0]
    ).deg2rad()  # neighbours 1, 0, 3, 2 against 1, 0, 1, 2: rows 0, 1, 3 agree
    student = torch.stack([moved.cos(), moved.sin()], dim=1)
    assert top1_agreement(teacher, student) == 0.75


def test_shape_mismatch_and_tiny_sets_are_errors():
    with pytest.raises(ValueError, match="differ in shape"):
        mean_cosine(torch.ones(3, 2), torch.ones(2, 2))
    with pytest.raises(ValueError, match="n >= 2"):
        nearest_other(torch.ones(1, 4))


def test_mean_pool_averages_unmasked_tokens_and_normalizes():
    hidden = torch.tensor([[[1.0, 0.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    expected = F.normalize(torch.tensor([[2.0, 2.0]]), dim=-1)  # mean of the two real tokens
    torch.testing.assert_close(MeanPool()(hidden, mask), expected, rtol=0, atol=1e-7)
