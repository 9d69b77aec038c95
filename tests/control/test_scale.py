"""ScaleTuner and Displacement: Mechanic's parameterisation and tuner, against mechanic-pytorch's own
implementation (the oracle) on a small regression, plus their settings and state."""

import pytest
import torch

from lightning_hybrid.control.scale import Displacement, ScaleSettings, ScaleTuner


def _problem(seed=0):
    gen = torch.Generator().manual_seed(seed)
    x, w = torch.randn(64, 8, generator=gen), torch.randn(8, 3, generator=gen)
    y = x @ w + 0.1 * torch.randn(64, 3, generator=gen)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    return model, x, y


def _loss(model, x, y, t):
    rows = slice(8 * (t % 8), 8 * (t % 8) + 8)  # a different batch each step
    return torch.nn.functional.mse_loss(model(x[rows]), y[rows])


def _ours(steps, base_lr=0.1):
    model, x, y = _problem()
    params = list(model.parameters())
    base = torch.optim.SGD(params, lr=base_lr, momentum=0.9)
    disp, tuner, decay = Displacement(params), ScaleTuner(), ScaleSettings().decay
    scales = []
    for t in range(steps):
        base.zero_grad()
        _loss(model, x, y, t).backward()
        grads = [p.grad.clone() for p in params]
        before = tuner.scale
        base.step()
        h = disp.hypergradient(params, grads, before, decay)  # Mechanic reads the weights after the base step
        disp.accumulate(params, before)
        tuner.update(h)
        disp.place(params, tuner.scale)
        scales.append(float(tuner.scale))
    return [p.detach().clone() for p in params], scales


def _mechanic(steps, base_lr=0.1):
    mechanic = pytest.importorskip("mechanic_pytorch")
    model, x, y = _problem()
    params = list(model.parameters())
    opt = mechanic.mechanize(torch.optim.SGD, store_delta=True)(params, lr=base_lr, momentum=0.9)
    scales = []
    for t in range(steps):
        opt.zero_grad()
        _loss(model, x, y, t).backward()
        opt.step()
        scales.append(float(opt.state["_mechanic"]["s"].sum()))
    return [p.detach().clone() for p in params], scales


def test_the_parameterisation_and_tuner_follow_mechanic_pytorch():
    ours, our_scales = _ours(60)
    theirs, their_scales = _mechanic(60)
    # oracle: mechanic-pytorch (store_delta=True keeps Delta as we do); float32 sums in another order
    torch.testing.assert_close(torch.tensor(our_scales), torch.tensor(their_scales), rtol=1e-4, atol=0)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    assert their_scales[-1] > 100 * their_scales[1]  # the scale has grown from its start: the test moved


def test_state_round_trips_and_continues_identically():
    tuner = ScaleTuner()
    for h in (0.3, -0.1, 0.2):
        tuner.update(torch.tensor(h))
    copy = ScaleTuner()
    copy.load_state_dict(tuner.state_dict())
    for t in (tuner, copy):
        t.update(torch.tensor(-0.05))
    torch.testing.assert_close(copy.scale, tuner.scale, rtol=0, atol=0)
    with pytest.raises(ValueError, match="`betas` must match"):
        ScaleTuner(ScaleSettings(betas=(0.9,))).load_state_dict(tuner.state_dict())
    disp = Displacement([torch.ones(3), torch.zeros(2)])
    with pytest.raises(ValueError, match="holds 2 parameter tensors, this model 1"):
        Displacement([torch.ones(3)]).load_state_dict(disp.state_dict())


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"betas": ()}, "`betas` must list at least one"),
        ({"betas": (0.9, 1.0)}, r"`betas` must be a finite number in \(0, 1\), got 1.0"),
        ({"s_init": 0.0}, "`s_init` must be"),
        ({"decay": -1.0}, "`decay` must be"),
    ],
)
def test_bad_settings_are_named(fields, match):
    with pytest.raises(ValueError, match=match):
        ScaleSettings(**fields)
