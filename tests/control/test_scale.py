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


def _run_with_kinds(steps, kinds):
    """Our loop with one scale per kind of tensor (kinds: per tensor) or, with kinds=None, with a separate
    Displacement and tuner for each of the two halves of the model."""
    model, x, y = _problem()
    params = list(model.parameters())
    base = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    halves = [params[:2], params[2:]]
    if kinds is None:
        parts = [(half, Displacement(half), ScaleTuner()) for half in halves]
    else:
        parts = [(params, Displacement(params, kinds=kinds), ScaleTuner(count=2))]
    for t in range(steps):
        base.zero_grad()
        _loss(model, x, y, t).backward()
        grads = {id(p): p.grad.clone() for p in params}
        befores = [tuner.scale for _, _, tuner in parts]
        base.step()
        for (ps, disp, tuner), before in zip(parts, befores):
            h = disp.hypergradient(ps, [grads[id(p)] for p in ps], before, 0.01)
            disp.accumulate(ps, before)
            tuner.update(h)
            disp.place(ps, tuner.scale)
    scales = torch.stack([tuner.scale for _, _, tuner in parts]).reshape(-1)
    return [p.detach().clone() for p in params], scales


def test_one_scale_per_kind_is_independent_learners_on_each_kinds_tensors():
    ours, our_scales = _run_with_kinds(40, kinds=[0, 0, 1, 1])
    # oracle: two separate one-scale learners, one on each half (the first layer, the second)
    theirs, their_scales = _run_with_kinds(40, kinds=None)
    torch.testing.assert_close(our_scales, their_scales, rtol=1e-6, atol=0)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert our_scales[0] != our_scales[1]  # the two kinds did learn different scales


def test_kinds_must_name_one_index_per_tensor():
    with pytest.raises(ValueError, match="`kinds` must hold one index >= 0 per parameter tensor"):
        Displacement([torch.ones(3), torch.ones(2)], kinds=[0])
    with pytest.raises(ValueError, match="`count` must be"):
        ScaleTuner(count=0)


def test_state_round_trips_and_continues_identically():
    tuner = ScaleTuner()
    for h in (0.3, -0.1, 0.2):
        tuner.update(torch.tensor(h))
    copy = ScaleTuner()
    copy.load_state_dict(tuner.state_dict())
    for t in (tuner, copy):
        t.update(torch.tensor(-0.05))
    torch.testing.assert_close(copy.scale, tuner.scale, rtol=0, atol=0)
    with pytest.raises(ValueError, match="`betas` and the number of scales must match"):
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
