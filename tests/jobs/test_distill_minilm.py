"""The sentence distillation job (jobs/distill_minilm.py) on a tiny BERT: its config, a run whose metric is
recomputed from its packed file, and 2-process DDP."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from helpers.tiny_bert import sentence_batches, sentences_text  # noqa: E402
from lightning_hybrid import load_packed
from lightning_hybrid.data.sentences import corpus_sentences, split_corpus
from lightning_hybrid.distill.agreement import embed, mean_cosine
from lightning_hybrid.distill.minilm import load_encoder  # noqa: E402
from lightning_hybrid.distill.sentence import SentenceStudent
from lightning_hybrid.jobs.configs import config_dir


def _compose(*overrides):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("distill_minilm", overrides=list(overrides))


def test_job_config_keeps_its_own_quant_and_trainer_settings_and_optimizer_choice():
    cfg = _compose()
    assert (cfg.quant.warmup_steps, cfg.trainer.max_steps, cfg.model.decay_steps, cfg.model.lr) == (100, 300, 300, 5e-4)
    assert _compose("optimizer=prodigy").model.lr == 1.0  # the optimizer group's own LR wins


def test_job_takes_the_logger_group():
    assert set(_compose("logger=[csv,tensorboard]").logger) == {"csv", "tensorboard"}
    assert set(_compose().logger) == {"csv"}


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
    batches = sentence_batches(tokenizer, held_out)
    assert mean_cosine(embed(teacher, batches), embed(packed, batches)) == pytest.approx(
        summary["mean_cosine"], abs=6e-5
    )


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
