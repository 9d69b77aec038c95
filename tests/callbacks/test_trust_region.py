"""TrustRegion in a Trainer: the bound on every step with accumulation and clipping, one optimizer only, arguments."""

import pytest
import torch

from helpers.hybrid import ScheduledClassifier, StepProbe, fit
from lightning_hybrid import TrustRegion


def test_trust_region_bounds_every_step_with_accumulation_and_clipping():
    probe = StepProbe()
    tr = TrustRegion(initial_radius=1e-3)
    fit([tr, probe], max_steps=8, accumulate_grad_batches=2, gradient_clip_val=0.5)
    assert len(probe.step_norms) == 8
    # 8 steps never finish a 50-step window, so the radius stays 1e-3: every step is cut to exactly it
    # (AdamW at lr 1e-2 wants far more).
    assert probe.step_norms == pytest.approx([1e-3] * 8, rel=1e-4)
    assert tr.summary()["active_rate"] == 1.0


def test_trust_region_refuses_several_optimizers():
    class TwoOptimizers(ScheduledClassifier):
        def __init__(self):
            super().__init__()
            self.automatic_optimization = False

        def training_step(self, batch, batch_idx):
            for opt in self.optimizers():
                opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(self(batch[0]), batch[1])
            self.manual_backward(loss)
            for opt in self.optimizers():
                opt.step()

        def configure_optimizers(self):
            half = list(self.parameters())
            return torch.optim.SGD(half[:3], lr=0.1), torch.optim.SGD(half[3:], lr=0.1)

    with pytest.raises(ValueError, match="one optimizer; configure_optimizers returned 2"):
        fit([TrustRegion()], model=TwoOptimizers())


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: TrustRegion(max_growth=0.5), "`max_growth` must be a finite number > 1, got 0.5"),
        (lambda: TrustRegion(initial_radius=0), "`initial_radius` must be a positive finite number, got 0"),
        (lambda: TrustRegion(scope="param"), "`scope` must be one of 'global', 'tensor'; got 'param'"),
        (lambda: TrustRegion(window=1), "`window` must be an integer >= 2, got 1"),
    ],
)
def test_bad_arguments_name_the_argument(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_an_unknown_argument_is_named_with_the_ones_it_takes():
    with pytest.raises(TypeError, match="TrustRegion got unexpected argument.s. radius; it takes initial_radius"):
        TrustRegion(radius=1.0)
