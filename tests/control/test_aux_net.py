"""AuxNetwork and AuxLRLearner. Oracles: central finite differences for d a / d phi (float64, tol 1e-7),
the stated bounds, and the sign of the hypergradient for the direction of learning."""

import math

import pytest
import torch

from lightning_hybrid.control.aux_net import AuxLRLearner, AuxNetwork
from lightning_hybrid.control.signals import FEATURE_NAMES


def test_network_size_and_neutral_start():
    assert AuxNetwork().numel == 354  # a few hundred parameters, as documented
    assert AuxNetwork(num_clusters=8).numel == 514
    learner = AuxLRLearner()
    assert learner.propose(torch.randn(len(FEATURE_NAMES))) == (1.0, 1.0)


def test_output_gradient_matches_finite_differences():
    learner = AuxLRLearner(seed=3)
    learner.net.params = torch.randn(learner.net.numel, dtype=torch.float64) * 0.3
    x = torch.randn(len(FEATURE_NAMES), dtype=torch.float64)
    learner.propose(x)
    grad_a, _ = learner.pending

    def a_of(phi: torch.Tensor) -> float:
        return learner.log_max_multiplier * math.tanh(float(learner.net.forward(phi, x)[0]))

    eps = 1e-6
    for i in torch.randperm(learner.net.numel)[:20].tolist():
        e = torch.zeros(learner.net.numel, dtype=torch.float64)
        e[i] = eps
        fd = (a_of(learner.net.params + e) - a_of(learner.net.params - e)) / (2 * eps)
        assert float(grad_a[i]) == pytest.approx(fd, abs=1e-7)


def test_outputs_stay_within_their_bounds():
    learner = AuxLRLearner(max_multiplier=8.0, max_radius_scale=2.0)
    learner.net.params = torch.full((learner.net.numel,), 50.0, dtype=torch.float64)
    m, r = learner.propose(torch.ones(len(FEATURE_NAMES)))
    assert 1 / 8 <= m <= 8 and 1 / 2 <= r <= 2
    assert m == pytest.approx(8.0, rel=1e-6)


@pytest.mark.parametrize(("hypergradient", "direction"), [(-0.1, 1), (0.1, -1)])
def test_learns_in_the_direction_the_hypergradient_says(hypergradient, direction):
    # d loss / d log lr < 0 means a larger LR would have lowered the loss: the multiplier must rise.
    learner = AuxLRLearner(aux_lr=1e-2)
    x = torch.zeros(len(FEATURE_NAMES))
    for _ in range(50):
        learner.propose(x)
        learner.settle(cut_fraction=0.0)
        learner.learn(hypergradient)
    m, r = learner.propose(x)
    assert direction * math.log(m) > 0.1
    assert r == 1.0  # no step was cut: the radius head gets no credit


def test_cut_steps_credit_the_radius_head_instead():
    learner = AuxLRLearner(aux_lr=1e-2)
    x = torch.zeros(len(FEATURE_NAMES))
    for _ in range(50):
        learner.propose(x)
        learner.settle(cut_fraction=1.0)
        learner.learn(-0.1)
    m, r = learner.propose(x)
    assert m == 1.0 and r > 1.1


def test_cluster_embedding_changes_the_input():
    learner = AuxLRLearner(num_clusters=4)
    learner.net.params = torch.randn(learner.net.numel, dtype=torch.float64)
    x = torch.zeros(len(FEATURE_NAMES))
    assert learner.propose(x, [0]) != learner.propose(x, [1])
    assert learner.propose(x, [1, 1]) == learner.propose(x, [1])


def test_state_round_trip_continues_identically():
    a, b = AuxLRLearner(seed=1), AuxLRLearner(seed=2)
    xs = [torch.randn(len(FEATURE_NAMES)) for _ in range(8)]
    for x in xs[:4]:
        a.propose(x)
        a.settle(0.3)
        a.learn(-0.05)
    a.propose(xs[4])
    b.load_state_dict(a.state_dict())
    for x in xs[5:]:
        for learner in (a, b):
            learner.settle(0.3)
            learner.learn(0.02)
        assert a.propose(x) == b.propose(x)


def test_state_from_a_different_network_is_refused():
    with pytest.raises(ValueError, match="hidden"):
        AuxLRLearner(hidden=8).load_state_dict(AuxLRLearner().state_dict())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_multiplier": 1.0}, "max_multiplier"),
        ({"max_radius_scale": float("inf")}, "max_radius_scale"),
        ({"aux_lr": 0}, "aux_lr"),
        ({"horizon_decay": 0.0}, "horizon_decay"),
        ({"seed": 0.5}, "seed"),
        ({"hidden": 0}, "hidden"),
        ({"num_clusters": -1}, "num_clusters"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AuxLRLearner(**kwargs)
