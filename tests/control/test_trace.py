"""ParameterTrace against explicit flattened-vector maths (oracle: hand-written EMA and telescoped
sum of past steps; float32 tolerance 1e-5)."""

import math

import pytest
import torch

from lightning_hybrid.control.trace import ParameterTrace


def _walk(steps: int, seed: int = 0) -> list[list[torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    theta = [torch.randn(3, 4, generator=gen), torch.randn(5, generator=gen)]
    path = [[t.clone() for t in theta]]
    for _ in range(steps):
        theta = [t + 0.1 * torch.randn(t.shape, generator=gen) for t in theta]
        path.append([t.clone() for t in theta])
    return path


def test_displacement_from_the_parameter_ema_is_the_discounted_sum_of_past_steps():
    beta, path = 0.9, _walk(6)
    trace = ParameterTrace(beta, signal="greedy")
    for theta in path[:-1]:
        trace.update(theta)
    flat = [torch.cat([t.reshape(-1) for t in theta]) for theta in path]
    t = len(path) - 1
    telescoped = sum(beta**i * (flat[t - i] - flat[t - 1 - i]) for i in range(t))
    g = [torch.randn_like(x) for x in path[-1]]
    reading = trace.read(path[-1], g)
    gf = torch.cat([x.reshape(-1) for x in g])
    expected = float(gf @ telescoped / (gf.norm() * telescoped.norm()))
    assert reading.cosine == pytest.approx(expected, abs=1e-5)
    assert reading.displacement == pytest.approx(float(telescoped.norm() / flat[t].norm()), rel=1e-5)
    assert reading.grad_norm == pytest.approx(float(gf.norm()), rel=1e-6)


def test_smoothed_signal_uses_the_gradient_ema():
    beta, path = 0.5, _walk(3, seed=1)
    trace = ParameterTrace(beta, signal="smoothed")
    grads = [[torch.randn_like(x) for x in theta] for theta in path]
    g_ema = None
    for theta, g in zip(path, grads):
        gf = torch.cat([x.reshape(-1) for x in g])
        g_ema = gf.clone() if g_ema is None else beta * g_ema + (1 - beta) * gf
        reading = trace.read(theta, g)
        trace.update(theta)
    flat = [torch.cat([t.reshape(-1) for t in theta]) for theta in path]
    p_ema = flat[0].clone()
    for x in flat[1:-1]:
        p_ema = beta * p_ema + (1 - beta) * x
    d = flat[-1] - p_ema
    assert reading.cosine == pytest.approx(float(g_ema @ d / (g_ema.norm() * d.norm())), abs=1e-5)


def test_first_reading_has_no_signal_and_missing_grads_are_skipped():
    trace = ParameterTrace()
    theta = [torch.ones(2), torch.ones(3)]
    assert trace.read(theta, [None, torch.ones(3)]).cosine == 0.0
    trace.update(theta)
    reading = trace.read([torch.full((2,), 2.0), torch.ones(3)], [None, torch.ones(3)])
    assert reading.grad_norm == pytest.approx(math.sqrt(3))


def test_state_round_trip_continues_identically():
    path = _walk(5, seed=2)
    a, b = ParameterTrace(0.8), ParameterTrace(0.8)
    g = [torch.ones(3, 4), torch.ones(5)]
    for theta in path[:3]:
        a.read(theta, g)
        a.update(theta)
    b.load_state_dict(a.state_dict(), path[0])
    for theta in path[3:]:
        assert a.read(theta, g) == b.read(theta, g)
        a.update(theta)
        b.update(theta)


@pytest.mark.parametrize(("kwargs", "match"), [({"decay": 1.0}, "`decay`"), ({"signal": "exact"}, "signal")])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ParameterTrace(**kwargs)
