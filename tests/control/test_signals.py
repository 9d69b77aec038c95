"""SignalTracker: the fixed feature maps (oracle: the formulas written out), robustness to an unknown loss."""

import math

import pytest
import torch

from lightning_hybrid.control.signals import FEATURE_NAMES, SignalTracker


def test_features_follow_their_documented_maps():
    tracker = SignalTracker(loss_decay=0.5, slope_decay=0.5)
    tracker.update(4.0, grad_norm=1.0, cosine=0.2)
    tracker.update(2.0, grad_norm=math.e, cosine=0.2)
    f = tracker.features(displacement=math.exp(-4.0), progress=0.25, last_multiplier=0.5, last_radius=-0.5)
    assert len(f) == len(FEATURE_NAMES) == 8
    log_ema = 0.5 * math.log(4.0) + 0.5 * math.log(2.0)
    assert float(f[0]) == pytest.approx(log_ema - math.log(4.0))
    assert float(f[1]) == pytest.approx(max(-3.0, 1000 * 0.5 * (log_ema - math.log(4.0))))  # clipped to [-3, 3]
    assert float(f[2]) == pytest.approx(1.0 - 0.05 * 1.0)  # log|g| minus its EMA (0.05 of the way from 0 to 1)
    assert float(f[3]) == pytest.approx(0.0)  # log(e^-4) + 4 = 0
    assert float(f[4]) == pytest.approx(-0.5)
    assert float(f[5]) == pytest.approx(10 * (0.05 * 0.2 + 0.95 * 0.05 * 0.2))
    assert f[6:].tolist() == [0.5, -0.5]


def test_an_unknown_loss_leaves_the_loss_signals_and_keeps_features_finite():
    tracker = SignalTracker()
    tracker.update(float("nan"), grad_norm=1.0, cosine=0.0)
    assert torch.isfinite(tracker.features(0.01, 0.0, 0.0, 0.0)).all()
    tracker.update(3.0, grad_norm=1.0, cosine=0.0)
    before = tracker.state_dict()
    tracker.update(float("nan"), grad_norm=1.0, cosine=0.0)
    assert tracker.log_loss_ema == before["signals.log_loss_ema"] and tracker.last_loss == 3.0


def test_state_round_trip():
    a = SignalTracker()
    for loss in (3.0, 2.5, 2.7):
        a.update(loss, 0.5, 0.01)
    b = SignalTracker()
    b.load_state_dict(a.state_dict())
    for t in (a, b):
        t.update(2.2, 0.4, -0.02)
    assert torch.equal(a.features(0.02, 0.5, 0.1, 0.0), b.features(0.02, 0.5, 0.1, 0.0))
