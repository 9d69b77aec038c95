"""SentenceStudent (distill/sentence.py): distilled from a tiny BERT teacher it recovers the agreement its
ternary copy lost; it has no task of its own and takes only a SentenceEncoder."""

import copy
import dataclasses

import pytest
import torch

from lightning_hybrid import Distillation, TernaryQAT
from lightning_hybrid.data.sentence_module import SentenceDataModule
from lightning_hybrid.distill.agreement import embed, mean_cosine
from lightning_hybrid.distill.sentence import SentenceStudent
from lightning_hybrid.quant.convert import convert

pytest.importorskip("transformers")
from helpers.models import quiet_trainer  # noqa: E402
from helpers.tiny_bert import PAIRS, SENTENCES, sentence_batches  # noqa: E402
from lightning_hybrid.distill.minilm import load_encoder  # noqa: E402


def test_distillation_recovers_agreement_lost_to_ternary_weights(bert_dir):
    teacher, tokenizer = load_encoder(bert_dir)
    before = copy.deepcopy(teacher.state_dict())
    batches = sentence_batches(tokenizer)
    student = SentenceStudent(teacher, lr=3e-3, warmup_steps=0, decay_steps=60)
    ptq_student = SentenceStudent(teacher)  # the ternary copy without training
    assert convert(ptq_student, bits=1.58).converted
    ptq_cosine = mean_cosine(embed(teacher, batches), embed(ptq_student, batches))
    fitted = Distillation(
        student, teacher, task_weight=0, kl_weight=0, hidden_weight=1, hidden_pairs=PAIRS, hidden_loss="cosine"
    )
    quiet_trainer(60, callbacks=[TernaryQAT()]).fit(
        fitted, SentenceDataModule(SENTENCES, tokenizer, batch_size=4, max_length=32)
    )
    trained_cosine = mean_cosine(embed(teacher, batches), embed(student, batches))
    # oracle: the untrained ternary copy; 60 steps on the 12 training sentences close most of the gap
    assert ptq_cosine < 0.9 and trained_cosine > ptq_cosine + 0.5 * (1 - ptq_cosine), (ptq_cosine, trained_cosine)
    for key, value in teacher.state_dict().items():  # the frozen teacher is where it began
        torch.testing.assert_close(value, before[key], rtol=0, atol=0, msg=key)


def test_a_student_without_a_task_needs_task_weight_zero(bert_dir):
    teacher, tokenizer = load_encoder(bert_dir)
    fitted = Distillation(
        SentenceStudent(teacher), teacher, task_weight=1.0, kl_weight=0, hidden_weight=1, hidden_pairs=PAIRS
    )
    with pytest.raises(ValueError, match="returned no loss while `task_weight` is 1.0"):
        quiet_trainer(1).fit(fitted, SentenceDataModule(SENTENCES, tokenizer, batch_size=4))


def test_student_rejects_a_bare_transformer(bert_dir):
    teacher, _ = load_encoder(bert_dir)
    with pytest.raises(TypeError, match="`encoder` must be a SentenceEncoder, got BertModel"):
        SentenceStudent(teacher.transformer)


def test_student_settings_default_to_fine_tuning_and_unknown_ones_are_named(bert_dir):
    teacher, _ = load_encoder(bert_dir)
    student = SentenceStudent(teacher, lr=1e-3)
    assert student.optimizer_settings == dataclasses.replace(SentenceStudent.DEFAULTS, lr=1e-3)
    with pytest.raises(TypeError, match="SentenceStudent got unexpected argument.s. learning_rate; it takes"):
        SentenceStudent(teacher, learning_rate=1e-3)
