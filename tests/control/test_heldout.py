"""GapAverage and difference: the held-out correction to a learned scale's hypergradient."""

import pytest
import torch

from lightning_hybrid.control.heldout import GapAverage, difference


def test_the_average_is_debiased_and_only_its_positive_part_corrects():
    gaps = GapAverage(memory=0.5)
    assert float(gaps.value) == 0.0 and float(gaps.correction) == 0.0  # nothing observed yet
    gaps.observe(torch.tensor(-4.0))
    assert float(gaps.value) == -4.0 and float(gaps.correction) == 0.0  # one observation: itself, debiased
    gaps.observe(torch.tensor(8.0))
    # oracle: the debiased exponential average by hand, (0.5 * 0.5 * -4 + 0.5 * 8) / (1 - 0.5^2)
    assert float(gaps.value) == pytest.approx((-1.0 + 4.0) / 0.75)
    assert float(gaps.correction) == pytest.approx(4.0)


def test_a_non_finite_gap_leaves_the_average_where_it_was_and_the_state_round_trips():
    gaps = GapAverage(memory=0.9, count=2)
    gaps.observe(torch.tensor([1.0, -2.0]))
    gaps.observe(torch.tensor([float("nan"), float("inf")]))
    torch.testing.assert_close(gaps.value, torch.tensor([1.0, -2.0]))  # counted as the average itself
    again = GapAverage(memory=0.9, count=2)
    again.load_state_dict(gaps.state_dict())
    assert again.observed == 2
    torch.testing.assert_close(again.value, gaps.value, rtol=0, atol=0)
    with pytest.raises(ValueError, match="heldout_every=0"):
        again.load_state_dict({})
    with pytest.raises(ValueError, match="`heldout_memory` must be"):
        GapAverage(memory=1.0)


def test_the_difference_counts_a_missing_gradient_as_zero():
    a, b = torch.tensor([1.0, 2.0]), torch.tensor([0.5, 0.5])
    out = difference([a, None, a, None], [b, b, None, None])
    torch.testing.assert_close(out[0], a - b)
    torch.testing.assert_close(out[1], -b)
    torch.testing.assert_close(out[2], a)
    assert out[3] is None
