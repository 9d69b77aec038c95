"""AuxLRController in a Trainer, alone and with the TrustRegion it links to: LRs, non-finite steps, resume,
summaries, cluster ids, arguments."""

import logging

import lightning.pytorch as pl
import pytest
import torch

from helpers.hybrid import LRLog, ScheduledClassifier, StepProbe, fit
from helpers.models import classification_loader
from lightning_hybrid import AuxLRController, TrustRegion


def test_multiply_mode_scales_the_users_chainable_schedule():
    plain = LRLog()
    fit([plain])
    log, aux = LRLog(), AuxLRController(aux_lr=3e-2)
    fit([aux, log])  # after the controller: sees the LR it set for the step
    # Oracle: the same CosineAnnealingLR without the controller. The schedule sees unscaled LRs.
    assert log.scheduled == pytest.approx(plain.lrs, rel=1e-12)
    multipliers = [lr / s for lr, s in zip(log.lrs, log.scheduled)]
    assert max(abs(m - 1) for m in multipliers) > 1e-3  # the network did move the LR
    assert all(1 / 32 <= m <= 32 for m in multipliers)
    assert aux.summary()["steps"] == 12


class LossLog(pl.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_before_backward(self, trainer, pl_module, loss):
        self.losses.append(float(loss))


def test_the_multiplier_is_held_after_learn_until():
    log, losses, aux = LRLog(), LossLog(), AuxLRController(aux_lr=3e-2, learn_until=0.5)
    fit([aux, log, losses])
    multipliers = [lr / s for lr, s in zip(log.lrs, log.scheduled)]
    assert len(set(multipliers[:6])) > 3  # learning: it moves
    assert multipliers[6:] == pytest.approx([multipliers[6]] * 6, rel=1e-12)  # held from step 6 of 12
    assert aux.summary()["final_loss"] == round(losses.losses[-1], 4)  # still read while held


def test_replace_mode_holds_the_base_lr_and_says_so_once(caplog):
    log = LRLog()
    with caplog.at_level(logging.INFO):
        fit([AuxLRController(mode="replace"), log])
    assert set(log.scheduled) == {1e-2}  # the model's base LR; the cosine schedule is ignored
    assert sum("mode='replace'" in r.getMessage() for r in caplog.records) == 1


def test_a_non_finite_loss_skips_the_step_and_shrinks_the_radius():
    probe, tr = StepProbe(), TrustRegion(initial_radius=1.0)
    aux = AuxLRController()
    with pytest.warns(UserWarning, match="step 3 skipped: non-finite loss"):
        fit([aux, tr, probe], max_steps=6, model=ScheduledClassifier(nan_at_step=3))
    assert probe.step_norms[3] == 0.0  # the weights did not move
    assert all(torch.isfinite(w).all() for w in probe.weights[-1])
    assert tr.summary()["skipped_steps"] == 1 and tr.core.radius == 0.5
    assert aux.summary()["skipped_steps"] == 1


def test_resume_from_a_checkpoint_continues_exactly(tmp_path):
    def callbacks():
        return [
            AuxLRController(aux_lr=3e-2, learn_until=1.0),
            TrustRegion(calibration_steps=3, window=3),
            LRLog(),
            StepProbe(),
        ]

    # The uninterrupted run writes a checkpoint after step 6 (an epoch boundary: 6 batches an epoch).
    save = pl.callbacks.ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=6, save_top_k=-1, filename="{step}")
    full = callbacks()
    fit(full + [save], max_steps=12, gradient_clip_val=1.0, enable_checkpointing=True)
    resumed = callbacks()
    fit(resumed, max_steps=12, gradient_clip_val=1.0, ckpt_path=tmp_path / "step=6.ckpt")
    assert resumed[2].lrs == full[2].lrs[6:]  # the same LR at every step, exactly
    for a, b in zip(full[3].weights[-1], resumed[3].weights[-1]):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert resumed[1].core.radius == full[1].core.radius
    assert resumed[0].summary() == full[0].summary()
    assert resumed[1].summary() == full[1].summary()


def test_manual_optimization_calling_backward_directly_still_steps():
    class PlainBackward(ScheduledClassifier):
        def __init__(self):
            super().__init__()
            self.automatic_optimization = False

        def training_step(self, batch, batch_idx):
            opt = self.optimizers()
            opt.zero_grad()
            torch.nn.functional.cross_entropy(self(batch[0]), batch[1]).backward()  # not manual_backward
            opt.step()

    log, aux, tr = LRLog(), AuxLRController(aux_lr=3e-2, learn_until=1.0), TrustRegion()
    fit([aux, tr, log], max_steps=6, model=PlainBackward())
    assert aux.summary()["skipped_steps"] == tr.summary()["skipped_steps"] == 0
    assert len(set(log.lrs)) > 3  # the controller still read the gradients and moved the LR


def test_fit_end_prints_and_logs_the_summaries(caplog, tmp_path):
    logger = pl.loggers.CSVLogger(tmp_path, name="", version="")
    with caplog.at_level(logging.INFO):
        fit([AuxLRController(), TrustRegion()], max_steps=4, logger=logger)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "AuxLRController: steps 4, skipped_steps 0, final_loss" in text and "mean_lr_multiplier" in text
    assert "TrustRegion: steps 4" in text and "active_rate" in text and "final_radius" in text
    metrics = (tmp_path / "metrics.csv").read_text()
    assert "auxlr_summary/mean_lr_multiplier" in metrics and "trust_summary/final_radius" in metrics


def test_cluster_ids_in_the_batch_reach_the_network():
    class ClusterBatches(ScheduledClassifier):
        def training_step(self, batch, batch_idx):
            return super().training_step((batch["x"], batch["y"]), batch_idx)

    loader = classification_loader(n=64)
    batches = [{"x": x, "y": y, "cluster": batch_idx % 3} for batch_idx, (x, y) in enumerate(loader)]
    aux = AuxLRController(num_clusters=3)
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=3,
        callbacks=[aux],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        limit_val_batches=0,
    )
    trainer.fit(ClusterBatches(), torch.utils.data.DataLoader(batches, batch_size=None))
    assert aux._cluster == [2]  # the last batch's id, as seen by every rank


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: AuxLRController(mode="schedule"), "mode"),
        (lambda: AuxLRController(max_multiplier=0.5), "max_multiplier"),
        (lambda: AuxLRController(horizon_decay=1.5), "`horizon_decay` must be a finite number in \\(0, 1\\), got 1.5"),
        (lambda: AuxLRController(signal="exact"), "signal"),
        (lambda: AuxLRController(learn_until=0.0), "learn_until"),
        (lambda: AuxLRController(hidden=0), "hidden"),
    ],
)
def test_bad_arguments_name_the_argument(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_an_unknown_argument_is_named_with_the_ones_it_takes():
    with pytest.raises(TypeError, match="AuxLRController got unexpected argument.s. horizon; it takes max_multiplier"):
        AuxLRController(horizon=0.9)
