"""TernGrad maths against its definition (distributed/terngrad.py); the hook itself runs in the
GradientCompression DDP tests (callbacks/test_compression.py)."""

import pytest
import torch

from lightning_hybrid.distributed import TernGradState, ternarize


def test_ternarize_is_unbiased_and_ternary():
    # oracle: E[s * code] = x (TernGrad eq. 2); over 20,000 draws the mean is within 5 standard errors
    x = torch.tensor([0.5, -0.25, 1.0, -1.0, 0.0, 0.1])
    scale = torch.tensor([1.0])
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([ternarize(x, scale, g) for _ in range(20_000)]).float()
    assert set(draws.unique().tolist()) <= {-1.0, 0.0, 1.0}
    stderr = (x.abs() * (1 - x.abs())).sqrt() / 20_000**0.5
    assert ((draws.mean(0) - x).abs() <= 5 * stderr + 1e-6).all()
    assert torch.equal(draws[:, 2], torch.ones(20_000)) and not draws[:, 4].any()  # |x| = s: always; 0: never


def test_zero_gradient_gives_zero_codes():
    assert not ternarize(torch.zeros(5), torch.zeros(1)).any()


def test_error_feedback_adds_the_last_residual_and_survives_rebuilt_buckets():
    state = TernGradState()
    state.residuals[0] = torch.tensor([0.5, -0.5])
    torch.testing.assert_close(state.compensate(0, torch.tensor([1.0, 1.0])), torch.tensor([1.5, 0.5]))
    torch.testing.assert_close(state.compensate(0, torch.ones(3)), torch.ones(3))  # another shape: dropped
    assert torch.equal(TernGradState(error_feedback=False).compensate(0, torch.ones(2)), torch.ones(2))


def test_bounding_clips_each_piece_at_its_own_spread():
    from lightning_hybrid.distributed.terngrad import bounded

    a, b = torch.tensor([0.0, 0.0, 0.0, 10.0]), torch.tensor([1.0, -1.0])
    clipped = bounded([a, b], 1.0)
    torch.testing.assert_close(clipped[0], torch.tensor([0.0, 0.0, 0.0, float(a.std(correction=0))]))
    torch.testing.assert_close(clipped[1], b)  # within one standard deviation (1.0) already
    assert bounded([a], None)[0] is a


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"clip_sigma": 0}, r"`clip_sigma` must be a positive finite number or None, got 0"),
        ({"wire": "int4"}, r"`wire` must be one of 'int8', '2bit'; got 'int4'"),
        ({"scale_per": "layer"}, r"`scale_per` must be one of 'parameter', 'bucket'; got 'layer'"),
    ],
)
def test_bad_settings_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TernGradState(**kwargs)
