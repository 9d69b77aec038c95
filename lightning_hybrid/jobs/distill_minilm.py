"""Distill a pretrained sentence encoder (all-MiniLM-L6-v2) into its ternary copy:
`python -m lightning_hybrid.distill_minilm` (Hydra; conf/distill_minilm.yaml; needs the `teacher` extra).

The student starts as the teacher's copy, TernaryQAT converts its Linear layers, and Distillation trains
it to reproduce the teacher's sentence embeddings (1 - cosine) on sentences of a text corpus. The run
reports, on held-out sentences, the mean teacher-student cosine and the top-1 nearest-neighbour agreement
on a retrieval set, and writes the packed student."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import hydra
import lightning.pytorch as pl
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.loggers import CSVLogger
from omegaconf import DictConfig, OmegaConf

from lightning_hybrid.callbacks.qat import TernaryQAT
from lightning_hybrid.data.sentence_module import SentenceDataModule, sentence_loader, tokenize
from lightning_hybrid.data.sentences import corpus_sentences, split_corpus
from lightning_hybrid.distill import Distillation
from lightning_hybrid.distill.agreement import embed, mean_cosine, top1_agreement
from lightning_hybrid.distill.minilm import load_encoder
from lightning_hybrid.export import round_like_export, state_sizes
from lightning_hybrid.jobs.configs import build_callbacks, config_dir
from lightning_hybrid.jobs.loggers import check_loggers, trackers
from lightning_hybrid.jobs.summary import callback_summaries, finish, format_summary, packed_export
from lightning_hybrid.quant.schedule import set_quant_lambda


def agreement(teacher, student, tokenizer, splits, cfg) -> dict[str, float]:
    """Mean cosine on the held-out sentences and top-1 agreement on the retrieval set."""
    corpus = cfg.corpus

    def both(sentences):
        loader = sentence_loader(tokenize(tokenizer, sentences, corpus.max_length), tokenizer.pad_token_id or 0, 64)
        return embed(teacher, loader), embed(student, loader)

    held_teacher, held_student = both(splits.held_out)
    retrieval_teacher, retrieval_student = both(splits.retrieval)
    return {
        "mean_cosine": round(mean_cosine(held_teacher, held_student), 4),
        "top1_agreement": round(top1_agreement(retrieval_teacher, retrieval_student), 4),
    }


def run(cfg: DictConfig, output_dir: str | os.PathLike) -> dict[str, Any]:
    """Fit (trainer.max_steps=0 only converts: post-training quantization), evaluate, export.

    The student is evaluated as it is exported: with TernaryQAT, fully quantized (lambda = 1), its other
    floating tensors rounded to `export_float_dtype` when one is set."""
    output_dir = Path(output_dir)
    check_loggers(cfg)
    pl.seed_everything(cfg.seed, workers=True)
    teacher, tokenizer = load_encoder(cfg.teacher)
    c = cfg.corpus
    splits = split_corpus(
        corpus_sentences(c.path, c.max_sentences, c.min_words, c.max_words), c.held_out, c.retrieval, c.split_seed
    )
    student = instantiate(cfg.model, encoder=teacher)
    settings = OmegaConf.to_container(cfg.distill, resolve=True)
    fitted = Distillation(student, teacher, task_weight=0.0, kl_weight=0.0, **settings)
    callbacks = build_callbacks(cfg)
    loggers = [CSVLogger(output_dir, name="csv", version=""), *trackers(cfg, output_dir)]
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    trainer.fit(fitted, SentenceDataModule(splits.train, tokenizer, c.batch_size, c.max_length))
    qat = next((c for c in callbacks if isinstance(c, TernaryQAT)), None)
    if qat:  # measured as exported: fully quantized, even when training stopped inside the lambda warm-up,
        set_quant_lambda(student, 1.0)  # and with the other tensors at the export's float dtype
        round_like_export(student, cfg.get("export_float_dtype"))
    summary: dict[str, Any] = {
        "steps": trainer.global_step,
        "sentences": {"train": len(splits.train), "held_out": len(splits.held_out), "retrieval": len(splits.retrieval)},
        **agreement(teacher, student, tokenizer, splits, cfg),
        "bits": str(qat.bits) if qat else "32 (fp32)",
        "teacher_fp32_bytes": state_sizes(teacher.state_dict())[0],
    }
    summary.update(callback_summaries(callbacks))
    if trainer.is_global_zero and qat:
        path = output_dir / "student.packed.safetensors"
        summary.update(packed_export(student, path, cfg.export_layout, cfg.get("export_float_dtype")))
    return finish(summary, output_dir, trainer, describe(summary, output_dir))


def describe(summary: dict[str, Any], output_dir: Path) -> str:
    """The summary as the job prints it."""
    n = summary["sentences"]
    rows = [
        ("steps", f"{summary['steps']} ({n['train']} training sentences)"),
        ("weight bits", summary["bits"]),
        (
            "mean cosine",
            f"{summary['mean_cosine']} (teacher vs student embeddings, {n['held_out']} held-out sentences)",
        ),
        (
            "top-1 agreement",
            f"{summary['top1_agreement']} (same nearest neighbour, {n['retrieval']}-sentence retrieval set)",
        ),
        ("teacher size", f"{summary['teacher_fp32_bytes']} bytes at fp32"),
    ]
    if "file_bytes" in summary:
        rows.append(("packed student", f"{summary['packed_file']} ({summary['file_bytes']} bytes)"))
    rows.append(("run directory", output_dir))
    return format_summary("lightning_hybrid sentence distillation", rows, label_width=18)


@hydra.main(config_path=config_dir(), config_name="distill_minilm", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run(cfg, HydraConfig.get().runtime.output_dir)


if __name__ == "__main__":
    main()
