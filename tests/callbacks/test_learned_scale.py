"""LearnedScale in a Trainer: the weights it sets are theta_0 + s * (sum of AdamW's updates), it learns,
skips non-finite steps, resumes exactly, and names bad arguments."""

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F

from helpers.hybrid import HeldOutData, ScheduledClassifier, StepProbe, fit
from helpers.models import classification_loader
from lightning_hybrid.callbacks.learned_scale import LearnedScale
from lightning_hybrid.control.heldout import GapAverage


class ScaleProbe(pl.Callback):
    """The scale after each optimizer step."""

    def __init__(self) -> None:
        self.scales: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        scale = next(c for c in trainer.callbacks if isinstance(c, LearnedScale))
        self.scales.append(scale.tuner.scale.tolist())  # a float, or one per kind


def test_the_weights_are_the_origin_plus_the_scaled_sum_of_updates():
    scale, probe, scales = LearnedScale(), StepProbe(), ScaleProbe()
    _, model = fit([scale, probe, scales], max_steps=12)
    origin, delta = scale.displacement.origin, scale.displacement.delta
    # oracle: the parameterisation itself, recomputed from the callback's own theta_0 and Delta
    for p, o, d in zip(model.parameters(), origin, delta):
        torch.testing.assert_close(p.detach(), o + scales.scales[-1] * d, rtol=1e-6, atol=1e-7)
    assert probe.step_norms[-1] > 10 * probe.step_norms[0]  # the steps grow with the scale
    assert scales.scales[-1] > 10 * scales.scales[1] > 0  # it learned a scale (it grows from about s_init)
    assert scale.summary()["steps"] == 12


class RelativeSchedule(ScheduledClassifier):
    """Cosine to a tenth of the base LR: the schedule's shape does not depend on the base LR."""

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=20, eta_min=0.1 * self.lr)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


def _final_weights(lr, **kwargs):
    torch.manual_seed(0)
    model, probe = RelativeSchedule(lr=lr), StepProbe()
    fit([LearnedScale(**kwargs), probe], max_steps=12, model=model)
    return probe.weights[-1]


def test_the_run_does_not_depend_on_the_base_lr():
    # oracle: the same run at a base LR 100x smaller; AdamW's update, its decoupled decay included, is
    # linear in the LR, so only float32 rounding (and AdamW's eps) differ
    for a, b in zip(_final_weights(1e-3), _final_weights(1e-1)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    mechanics_own = zip(_final_weights(1e-3, divide_by_base_lr=False), _final_weights(1e-1, divide_by_base_lr=False))
    assert any(not torch.allclose(a, b, rtol=1e-3) for a, b in mechanics_own)  # there the base LR matters


def test_a_non_finite_gradient_skips_the_step_and_leaves_the_state_finite():
    scale, probe = LearnedScale(), StepProbe()
    with pytest.warns(UserWarning, match="step 3 skipped: non-finite gradient"):
        fit([scale, probe], max_steps=6, model=ScheduledClassifier(nan_at_step=3))
    assert probe.step_norms[3] == 0.0
    assert scale.summary()["skipped_steps"] == 1 and scale.steps == 5
    assert all(torch.isfinite(d).all() for d in scale.displacement.delta) and torch.isfinite(scale.tuner.scale)


@pytest.mark.parametrize("kwargs", [{}, {"scales": "per_kind"}, {"rescale_past": False}, {"heldout_every": 2}], ids=str)
def test_resume_from_a_checkpoint_continues_exactly(tmp_path, kwargs):
    heldout = "heldout_every" in kwargs
    save = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=6, save_top_k=-1, filename="{step}")
    full = [LearnedScale(**kwargs), StepProbe(), ScaleProbe()]
    fit(full + [save], max_steps=12, gradient_clip_val=1.0, enable_checkpointing=True, heldout=heldout)
    resumed = [LearnedScale(**kwargs), StepProbe(), ScaleProbe()]
    fit(resumed, max_steps=12, gradient_clip_val=1.0, ckpt_path=tmp_path / "step=6.ckpt", heldout=heldout)
    assert resumed[2].scales == full[2].scales[6:]  # oracle: the uninterrupted run, exactly
    for a, b in zip(full[1].weights[-1], resumed[1].weights[-1]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert resumed[0].summary() == full[0].summary()


def test_several_optimizers_are_refused():
    class TwoOptimizers(ScheduledClassifier):
        def configure_optimizers(self):
            params = list(self.parameters())
            return [torch.optim.SGD(params[:1], lr=0.1), torch.optim.SGD(params[1:], lr=0.1)]

    model = TwoOptimizers()
    model.automatic_optimization = False
    with pytest.raises(ValueError, match="scales the updates of one optimizer; configure_optimizers returned 2"):
        fit([LearnedScale()], model=model)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"decay": -0.1}, "`decay` must be"),
        ({"betas": (0.9, 1.5)}, "`betas` must be"),
        ({"lr": 1.0}, "lr"),
        ({"divide_by_base_lr": "yes"}, "`divide_by_base_lr` must be True or False"),
        ({"scales": "per_layer"}, "`scales` must be one of"),
        ({"heldout_every": -1}, "`heldout_every` must be a non-negative integer, got -1"),
        ({"heldout_memory": 1.0}, "`heldout_memory` must be"),
        ({"heldout_one_sided": 0}, "`heldout_one_sided` must be True or False"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        LearnedScale(**kwargs)


def test_per_kind_scales_give_quantized_weights_other_matrices_and_vectors_a_scale_each():
    from lightning_hybrid import TernaryQAT

    scale = LearnedScale(scales="per_kind")
    fit([TernaryQAT(), scale], max_steps=12)
    kinds = dict(zip(("quantized", "matrix", "vector"), range(3)))
    assert set(scale.displacement.kinds) == set(kinds.values())  # the classifier has all three
    summary = scale.summary()
    finals = [summary[f"final_scale_{k}"] for k in kinds]
    assert all(s > 0 for s in finals) and len(set(finals)) == 3  # each learned its own


class PlainSGD(ScheduledClassifier):
    """SGD without momentum or schedule: its update is -lr * g, so the scale times it is -s * g."""

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


class StepRecord(pl.Callback):
    """Each step's gradients (after the backward) and the scale the step is taken at."""

    def __init__(self) -> None:
        self.grads: list[list[torch.Tensor]] = []
        self.scales: list[float] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        scale = next(c for c in trainer.callbacks if isinstance(c, LearnedScale))
        grads = [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in pl_module.parameters()]
        self.grads.append(grads)  # the unused embedding has none
        self.scales.append(float(scale.tuner.scale))


def test_without_rescaling_the_past_each_step_is_taken_at_its_own_scale():
    torch.manual_seed(0)
    model = PlainSGD()
    start = [p.detach().clone() for p in model.parameters()]
    record, scale = StepRecord(), LearnedScale(rescale_past=False)
    fit([scale, record], max_steps=12, model=model)
    # oracle: theta_T = theta_0 - sum_t s_t g_t, the scale of each step times SGD's unit-LR update
    for i, p in enumerate(model.parameters()):
        expected = start[i] - sum(s * g[i] for s, g in zip(record.scales, record.grads))
        torch.testing.assert_close(p.detach(), expected, rtol=1e-5, atol=1e-7)
    assert len(set(record.scales)) > 6  # the scale did change along the run


class HeldOutGradients(pl.Callback):
    """What LearnedScale sees before each step: the training gradients, the weights and Delta."""

    def __init__(self) -> None:
        self.grads, self.weights, self.deltas = [], [], []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        scale = next(c for c in trainer.callbacks if isinstance(c, LearnedScale))
        self.grads.append([torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in pl_module.parameters()])
        self.weights.append([p.detach().clone() for p in pl_module.parameters()])
        self.deltas.append([d.clone() for d in scale.displacement.delta])


def test_held_out_batches_correct_the_hypergradient_by_their_averaged_gap():
    scale, seen = LearnedScale(heldout_every=3, heldout_memory=0.5), HeldOutGradients()
    _, model = fit([seen, scale], max_steps=10, heldout=True)
    assert scale.summary()["heldout_batches"] == 2  # steps 6 and 9: the second epoch (6 steps each) on
    # oracle: each gap recomputed by hand, (g_held_out - g_train) . Delta at that step's weights, on the
    # batch the callback's draw gives, and the debiased average of the two at memory 0.5
    gaps = []
    for index, step in enumerate((6, 9)):
        with torch.no_grad():
            for p, w in zip(model.parameters(), seen.weights[step]):
                p.copy_(w)
        x, y = scale._draw(index)
        heldout = torch.autograd.grad(F.cross_entropy(model(x), y), list(model.parameters()), allow_unused=True)
        heldout = [torch.zeros_like(p) if h is None else h for h, p in zip(heldout, model.parameters())]
        parts = zip(heldout, seen.grads[step], seen.deltas[step])
        gaps.append(sum(((h - g) * d).sum() for h, g, d in parts))
    expected = (0.5 * 0.5 * gaps[0] + 0.5 * gaps[1]) / (1 - 0.5**2)
    torch.testing.assert_close(scale.gap.value, expected, rtol=1e-4, atol=1e-7)
    assert abs(float(expected)) > 0


def test_held_out_batches_need_a_held_out_loader():
    with pytest.raises(ValueError, match=r"LearnedScale\(heldout_every=3\) .* heldout_dataloader\(\)"):
        fit([LearnedScale(heldout_every=3)], max_steps=2)
    with pytest.raises(ValueError, match="heldout_every>0.*rescale_past=True"):
        LearnedScale(heldout_every=3, rescale_past=False)


def test_a_checkpoint_resumes_only_with_the_held_out_setting_it_was_written_with(tmp_path):
    save = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=8, save_top_k=-1, filename="{step}")
    fit([LearnedScale(heldout_every=2), save], max_steps=8, enable_checkpointing=True, heldout=True)
    with pytest.raises(ValueError, match="resume it with the same heldout_every"):
        fit([LearnedScale()], max_steps=10, ckpt_path=tmp_path / "step=8.ckpt", heldout=True)


def test_the_two_sided_ablation_adds_the_whole_average():
    one_sided, two_sided = LearnedScale(heldout_every=1), LearnedScale(heldout_every=1, heldout_one_sided=False)
    for scale in (one_sided, two_sided):
        scale.gap = GapAverage(memory=0.5)
        scale.gap.observe(torch.tensor(-3.0))
    # oracle: the average is -3; only its positive part (0) corrects by default, all of it in the ablation
    assert float(one_sided.heldout_correction()) == 0.0 and float(two_sided.heldout_correction()) == -3.0


class NothingHeldOut(HeldOutData):
    def heldout_dataloader(self):
        return classification_loader(n=0)


def test_an_empty_held_out_set_serves_a_one_epoch_run_and_is_refused_before_a_longer_one_starts():
    scale = LearnedScale(heldout_every=2)
    fit([scale], max_steps=6, heldout=NothingHeldOut())  # 6 steps: one epoch, nothing to draw
    assert scale.summary()["heldout_batches"] == 0 and scale.steps == 6
    with pytest.raises(ValueError, match="holds no item, and the run goes past its first epoch"):
        fit([LearnedScale(heldout_every=2)], max_steps=7, heldout=NothingHeldOut())
