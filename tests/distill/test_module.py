"""Distillation with a Trainer: what it trains, what it leaves alone, its errors, and resume."""

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from helpers.models import quiet_trainer
from lightning_hybrid import Distillation, TernaryQAT
from lightning_hybrid.models import LanguageModel

VOCAB, BLOCK = 17, 8


def _lm(seed, n_embd=16):
    torch.manual_seed(seed)
    return LanguageModel(
        vocab_size=VOCAB, block_size=BLOCK, n_layer=1, n_head=2, n_embd=n_embd, warmup_steps=1, lr=1e-2
    )


def _loader(sequences=64):
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, VOCAB, (sequences, BLOCK + 1), generator=g)
    return DataLoader(TensorDataset(tokens[:, :-1], tokens[:, 1:]), batch_size=8)


class _KLHistory(pl.Callback):
    def __init__(self):
        self.values = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.values.append(float(trainer.callback_metrics["distill/kl"]))


def test_the_student_learns_the_teacher_and_the_teacher_is_untouched():
    teacher = _lm(1)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    distill = Distillation(
        _lm(0),
        teacher,
        task_weight=0.0,
        kl_weight=1.0,
        hidden_weight=1.0,
        hidden_pairs={"model.blocks.0": "model.blocks.0"},
    )
    history = _KLHistory()
    trainer = quiet_trainer(40, callbacks=[history])
    trainer.fit(distill, _loader())
    assert sum(history.values[-5:]) < 0.5 * sum(history.values[:5])  # KL to the teacher falls
    assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    assert all(k.startswith("student.") for k in distill.state_dict())  # no teacher in checkpoints
    assert {"distill/kl", "distill/hidden", "distill/loss", "train_loss"} <= set(trainer.callback_metrics)


def test_ternary_student_copy_of_the_teacher():
    teacher = _lm(1)
    student = _lm(2)
    student.load_state_dict(teacher.state_dict())  # a ternary copy, starting from the teacher's weights
    qat = TernaryQAT(warmup_steps=4)
    quiet_trainer(6, callbacks=[qat]).fit(Distillation(student, teacher), _loader())
    assert str(qat.report) == "converted 4 of 5 linear layers, skipped 1"  # the student's only
    assert type(teacher.model.blocks[0].mlp.fc) is torch.nn.Linear


def test_resume_equals_an_uninterrupted_run(tmp_path):
    def run(steps, ckpt=None, save=None):
        distill = Distillation(_lm(0), _lm(1), temperature=1.5)
        callbacks = (
            [pl.callbacks.ModelCheckpoint(dirpath=tmp_path, save_last=True, every_n_train_steps=3)] if save else []
        )
        trainer = pl.Trainer(
            max_steps=steps,
            accelerator="cpu",
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=bool(save),
            callbacks=callbacks,
        )
        trainer.fit(distill, _loader(24), ckpt_path=ckpt)  # 3 batches an epoch: the checkpoint ends epoch 0
        return distill.student.state_dict()

    whole = run(6)
    run(3, save=True)
    resumed = run(6, ckpt=tmp_path / "last.ckpt")
    assert all(torch.equal(resumed[k], whole[k]) for k in whole)


def test_errors_name_the_argument():
    with pytest.raises(TypeError, match="`student` must be a LightningModule, got Linear"):
        Distillation(torch.nn.Linear(2, 2), _lm(1))
    with pytest.raises(ValueError, match=r"`hidden_pairs` names 'model.nope', which is not a submodule"):
        Distillation(_lm(0), _lm(1), hidden_weight=1.0, hidden_pairs={"model.nope": "model.blocks.0"})
    with pytest.raises(ValueError, match="`hidden_weight` > 0 needs `hidden_pairs`"):
        Distillation(_lm(0), _lm(1), hidden_weight=1.0)
    wide = Distillation(
        _lm(0), _lm(1, n_embd=32), kl_weight=0.0, hidden_weight=1.0, hidden_pairs={"model.blocks.0": "model.blocks.0"}
    )
    with pytest.raises(ValueError, match=r"student output \(8, 8, 16\) and teacher output \(8, 8, 32\) differ"):
        quiet_trainer(1).fit(wide, _loader())


class _NoForward(LanguageModel):
    def training_step(self, batch, batch_idx):
        x, y = batch
        return torch.nn.functional.cross_entropy(self.model(x).flatten(0, 1), y.flatten())


def test_a_student_that_never_calls_itself_is_an_error():
    student = _NoForward(vocab_size=VOCAB, block_size=BLOCK, n_layer=1, n_head=2, n_embd=16)
    with pytest.raises(RuntimeError, match="never called the student"):
        quiet_trainer(1).fit(Distillation(student, _lm(1)), _loader())
