"""The main job: `python -m lightning_hybrid.train` (Hydra; configs in conf/)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import lightning.pytorch as pl
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_info
from omegaconf import DictConfig
from safetensors.torch import save_model

from lightning_hybrid.callbacks.qat import TernaryQAT
from lightning_hybrid.distill import Distillation
from lightning_hybrid.distill.runs import WEIGHTS, load_run_weights, teacher_from_run
from lightning_hybrid.export import save_packed


def config_dir() -> str:
    """conf/ as shipped inside the wheel, else the source checkout's top-level conf/."""
    packaged = Path(__file__).resolve().parent / "conf"
    return str(packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "conf")


def build_callbacks(cfg: DictConfig) -> list[pl.Callback]:
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None]
    for group in ("quant", "compression"):  # groups whose enabled option is one callback
        node = cfg.get(group) or {}
        if node.get("_target_"):
            callbacks.append(instantiate(node))
    return callbacks


def _export_summary(model: pl.LightningModule, path: Path, layout: str, float_dtype: str | None = None) -> dict[str, Any]:
    report = save_packed(model, path, layout=layout, float_dtype=float_dtype)
    return {
        "packed_file": report.path,
        "file_bytes": report.file_bytes,
        "compression_vs_fp32": round(report.compression_vs_fp32, 2),
        "compression_vs_bf16": round(report.compression_vs_bf16, 2),
        "quantized_bits_per_weight": round(report.quantized_bits_per_weight, 3),
    }


def with_teacher(cfg: DictConfig, model: pl.LightningModule, vocab_size: int) -> pl.LightningModule:
    """The module to fit: `model`, or a Distillation of the configured teacher run into it."""
    distill = cfg.get("distill") or {}
    if not distill.get("enabled"):
        return model
    settings = {k: distill[k] for k in distill if k not in ("enabled", "teacher_run")}
    settings["hidden_pairs"] = dict(settings.get("hidden_pairs") or {})
    return Distillation(model, teacher_from_run(distill.teacher_run, vocab_size), **settings)


def _loss(metrics: dict[str, Any], key: str) -> float | None:
    return round(float(metrics[key]), 4) if key in metrics else None


def train(cfg: DictConfig, output_dir: str | os.PathLike, extra_callbacks: Sequence[pl.Callback] = ()) -> dict[str, Any]:
    """Fit, validate, export; return the summary (also written to summary.json on rank 0).

    `extra_callbacks` join the configured ones (the benchmark harness passes its recorder here).
    """
    output_dir = Path(output_dir)
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    model = instantiate(cfg.model, vocab_size=datamodule.vocab_size)
    if cfg.get("init_from"):
        load_run_weights(model, cfg.init_from, "init_from")
    fitted = with_teacher(cfg, model, datamodule.vocab_size)
    callbacks = build_callbacks(cfg) + list(extra_callbacks)
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=CSVLogger(output_dir, name="csv", version=""))
    trainer.fit(fitted, datamodule)
    train_loss = _loss(trainer.callback_metrics, "train_loss")
    val_loss = _loss(trainer.validate(fitted, datamodule, verbose=False)[0], "val_loss")
    qat = next((c for c in callbacks if isinstance(c, TernaryQAT)), None)
    bits = "32 (fp32)"
    if qat:
        bits = f"mixed, {qat.average_bits():.3f} on average" if qat.plan_bits else str(qat.bits)
    summary: dict[str, Any] = {"steps": trainer.global_step, "train_loss": train_loss, "val_loss": val_loss, "bits": bits}
    if fitted is not model:
        summary["teacher_run"] = str(cfg.distill.teacher_run)
    if qat:
        summary["quant_error_mean"] = round(float(qat.quantization_error()["mean"]), 4)
    for callback in callbacks:  # AuxLRController, TrustRegion: steps, multipliers, radius, ...
        if callable(getattr(callback, "summary", None)):
            summary[type(callback).__name__] = callback.summary()
    if trainer.is_global_zero:
        save_model(model, output_dir / WEIGHTS)  # full precision (latent) weights: init_from and teachers read them
        if qat:
            summary.update(
                _export_summary(model, output_dir / "model.packed.safetensors", cfg.export_layout, cfg.get("export_float_dtype"))
            )
        (output_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    rank_zero_info(format_summary(summary, output_dir))
    return summary


def format_summary(summary: dict[str, Any], output_dir: Path) -> str:
    lines = [
        "",
        "lightning_hybrid run summary",
        f"  steps            {summary['steps']}",
        f"  final train loss {summary['train_loss']}",
        f"  final val loss   {summary['val_loss']}",
        f"  weight bits      {summary['bits']}",
    ]
    if "quant_error_mean" in summary:
        lines.append(f"  quant. error     {summary['quant_error_mean']} (mean ||W - Q(W)|| / ||W|| over quantized layers)")
    if "file_bytes" in summary:
        lines += [
            f"  packed export    {summary['packed_file']} ({summary['file_bytes']} bytes, "
            f"{summary['quantized_bits_per_weight']} bits per quantized weight)",
            f"  compression      {summary['compression_vs_fp32']}x vs fp32, {summary['compression_vs_bf16']}x vs bf16 (whole model)",
        ]
    lines.append(f"  run directory    {output_dir} (CSV metrics in csv/metrics.csv)")
    return "\n".join(lines)


@hydra.main(config_path=config_dir(), config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    """Returns the final val loss: the objective of sweepers such as hydra-optuna-sweeper."""
    return train(cfg, HydraConfig.get().runtime.output_dir)["val_loss"]


if __name__ == "__main__":
    main()
