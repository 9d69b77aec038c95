"""The main job: `python -m lightning_hybrid.train` (Hydra; configs in conf/)."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import lightning.pytorch as pl
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import save_model

from lightning_hybrid.callbacks.checkpoint import LastCheckpoint
from lightning_hybrid.callbacks.compile import CompileModel
from lightning_hybrid.callbacks.qat import TernaryQAT
from lightning_hybrid.distill import Distillation
from lightning_hybrid.export import (
    check_export_settings,
    check_gguf_settings,
    check_transformers_settings,
    save_gguf,
    save_transformers,
)
from lightning_hybrid.export.gguf_llama import FLOAT_TYPES, TERNARY_TYPES
from lightning_hybrid.jobs.configs import build_callbacks, config_dir
from lightning_hybrid.jobs.errors import reported
from lightning_hybrid.jobs.loggers import check_loggers, trackers
from lightning_hybrid.jobs.logs import log_run_to_file
from lightning_hybrid.jobs.resume import checkpoint_of, register_resolvers, resumed_config, resumed_logger
from lightning_hybrid.jobs.runs import WEIGHTS, load_run_weights, teacher_from_run
from lightning_hybrid.jobs.summary import callback_summaries, finish, format_summary, packed_export, write_curves
from lightning_hybrid.utils.checks import choice

register_resolvers()

EXPORT_FORMATS = ("packed", "transformers", "gguf")
GGUF_KEYS = {  # the job's key: save_gguf's argument, its values, the default
    "export_gguf_type": ("ternary_type", TERNARY_TYPES, "TQ2_0"),
    "export_gguf_float_type": ("float_type", FLOAT_TYPES, "F16"),
}
EXIT_CODES = {"Ctrl-C": 130, "SIGTERM": 143}  # the shells' codes for a process stopped by SIGINT / SIGTERM


def with_teacher(cfg: DictConfig, model: pl.LightningModule, vocab_size: int | None) -> pl.LightningModule:
    """The module to fit: `model`, or a Distillation of the configured teacher run into it (a language
    model's: `vocab_size` is the data's)."""
    distill = cfg.get("distill") or {}
    if not distill.get("enabled"):
        return model
    if vocab_size is None:
        raise ValueError("distill.enabled=true needs a language-model datamodule (one with a vocab_size).")
    settings = {k: distill[k] for k in distill if k not in ("enabled", "teacher_run")}
    settings["hidden_pairs"] = dict(settings.get("hidden_pairs") or {})
    return Distillation(model, teacher_from_run(distill.teacher_run, vocab_size), **settings)


def model_kwargs(datamodule: pl.LightningDataModule) -> dict[str, Any]:
    """The data's facts the model config leaves out: the datamodule's `model_kwargs()`, or else its
    `vocab_size` (a language-model datamodule of the user's own)."""
    if callable(getattr(datamodule, "model_kwargs", None)):
        return datamodule.model_kwargs()
    return {"vocab_size": datamodule.vocab_size}


def _loss(metrics: dict[str, Any], key: str) -> float | None:
    return round(float(metrics[key]), 4) if key in metrics else None


def _bits(qat: TernaryQAT | None) -> str:
    if qat is None:
        return "32 (fp32)"
    return f"mixed, {qat.average_bits():.3f} on average" if qat.plan_bits else str(qat.bits)


def train(
    cfg: DictConfig, output_dir: str | os.PathLike, extra_callbacks: Sequence[pl.Callback] = ()
) -> dict[str, Any]:
    """Fit, validate, export; return the summary (also written to summary.json on rank 0).

    `extra_callbacks` join the configured ones (the benchmark harness passes its recorder here).
    """
    output_dir = Path(output_dir)
    checkpoint = checkpoint_of(cfg.resume) if cfg.get("resume") else None
    check_settings(cfg)
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    # plain containers in the hparams, so that checkpoints load with torch.load(weights_only=True)
    model = instantiate(cfg.model, **model_kwargs(datamodule), _convert_="all")
    check_model_exports(cfg, model)
    if cfg.get("init_from"):
        load_run_weights(model, cfg.init_from, "init_from")
    fitted = with_teacher(cfg, model, getattr(datamodule, "vocab_size", None))
    callbacks = build_callbacks(cfg) + list(extra_callbacks)
    if cfg.get("compile"):
        callbacks.append(CompileModel())  # last: after TernaryQAT has swapped its layers in setup
    loggers = [resumed_logger(output_dir, checkpoint), *trackers(cfg, output_dir, resuming=checkpoint is not None)]
    trainer: pl.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers)
    try:
        trainer.fit(fitted, datamodule, ckpt_path=checkpoint)
    except SystemExit:  # Ctrl-C, SIGTERM (Lightning's SIGTERMException), a second Ctrl-C
        stopped(trainer, callbacks, output_dir)
    train_loss = _loss(trainer.callback_metrics, "train_loss")
    val_loss = _loss(trainer.validate(fitted, datamodule, verbose=False)[0], "val_loss")
    qat = next((c for c in callbacks if isinstance(c, TernaryQAT)), None)
    summary: dict[str, Any] = {
        "steps": trainer.global_step,
        "train_loss": train_loss,
        "val_loss": val_loss,
        "bits": _bits(qat),
    }
    if fitted is not model:
        summary["teacher_run"] = str(cfg.distill.teacher_run)
    if qat:
        summary["quant_error_mean"] = round(float(qat.quantization_error()["mean"]), 4)
    summary.update(callback_summaries(callbacks))
    if trainer.is_global_zero:
        save_model(model, output_dir / WEIGHTS)  # full precision (latent) weights: init_from and teachers read them
        if qat:
            summary.update(write_exports(cfg, model, output_dir))
        summary.update(write_curves(output_dir))
    return finish(summary, output_dir, trainer, describe(summary, output_dir))


def check_settings(cfg: DictConfig) -> None:
    """What the job itself reads after training, checked before it: a wrong value fails in seconds."""
    names = ("export_layout", "export_float_dtype")
    check_export_settings(cfg.export_layout, cfg.get("export_float_dtype"), names)
    for export_format in cfg.get("export_formats", ["packed"]):
        choice("export_formats", export_format, EXPORT_FORMATS)
    gguf_arguments(cfg)
    if choice("compile", cfg.get("compile", False), (True, False)) and (cfg.get("distill") or {}).get("enabled"):
        raise ValueError("compile=true does not combine with distill.enabled=true (the teacher's captures are eager).")
    check_progress_bar(cfg)
    check_loggers(cfg)
    if cfg.get("init_from") and not Path(cfg.init_from).is_dir():
        raise FileNotFoundError(f"init_from={cfg.init_from}: no such run directory.")


def check_progress_bar(cfg: DictConfig) -> None:
    """progress_bar=rich needs the rich package: say which extra, before training rather than at its start."""
    bar = (cfg.get("callbacks") or {}).get("progress_bar") or {}
    if str(bar.get("_target_", "")).endswith("RichProgressBar") and importlib.util.find_spec("rich") is None:
        raise ModuleNotFoundError("progress_bar=rich needs the rich package: pip install 'lightning_hybrid[rich]'.")


def gguf_vocab(cfg: DictConfig) -> str:
    """The gguf export's vocabulary: bytes for byte-level text data, none (token ids only) otherwise."""
    return "bytes" if cfg.data.get("tokenizer") == "byte" else "none"


def check_model_exports(cfg: DictConfig, model: pl.LightningModule) -> None:
    """The exports' demands on the model, checked once it is built and before it trains."""
    formats = cfg.get("export_formats", [])
    quant = cfg.get("quant") or {}
    quantized = quant.get("enabled", True) and "_target_" in quant
    if "transformers" in formats:
        check_transformers_settings(model, quant.get("bits") if quantized else None, quant.get("act_bits"))
    if "gguf" in formats:
        if not quantized:
            raise ValueError("a gguf export needs quantized weights (quant=ternary or binary); this run has none.")
        check_gguf_settings(model, **gguf_arguments(cfg), vocab=gguf_vocab(cfg))


def gguf_arguments(cfg: DictConfig) -> dict[str, str]:
    """save_gguf's types from the job's keys; a wrong value names the key."""
    return {arg: choice(key, cfg.get(key, default), options) for key, (arg, options, default) in GGUF_KEYS.items()}


def write_exports(cfg: DictConfig, model: pl.LightningModule, output_dir: Path) -> dict[str, Any]:
    """The configured export formats of a quantized model, written into the run directory; their summary."""
    written: dict[str, Any] = {}
    formats = cfg.get("export_formats", ["packed"])
    if "packed" in formats:
        path = output_dir / "model.packed.safetensors"
        written.update(packed_export(model, path, cfg.export_layout, cfg.get("export_float_dtype")))
    if "transformers" in formats:
        written["transformers_dir"] = str(save_transformers(model, output_dir / "transformers").directory)
    if "gguf" in formats:
        export = save_gguf(model, output_dir / "model.gguf", **gguf_arguments(cfg), vocab=gguf_vocab(cfg))
        written.update(gguf_file=str(export.path), gguf_bytes=export.file_bytes, gguf_type=export.ternary_type)
    return written


def stopped(trainer: pl.Trainer, callbacks: Sequence[pl.Callback], output_dir: Path) -> None:
    """A run stopped before its end: no export, a summary that says so and how to resume; exits."""
    keeper = next((c for c in callbacks if isinstance(c, LastCheckpoint)), None)
    by = keeper.stopped_by if keeper is not None and keeper.stopped_by else "Ctrl-C"
    has_checkpoint = keeper is not None and keeper.path is not None and keeper.path.is_file()
    summary = {"interrupted": True, "stopped_by": by, "steps": trainer.global_step}
    rows = [("stopped", f"by {by} after step {trainer.global_step}; nothing was exported")]
    if has_checkpoint:
        summary["checkpoint"] = str(keeper.path)
        summary["resume"] = f"python -m lightning_hybrid.train resume={output_dir}"
        rows.append(("resume with", summary["resume"]))
    else:
        rows.append(("resume", "not possible: no checkpoint was written"))
    if trainer.is_global_zero:
        summary.update(write_curves(output_dir))
    finish(summary, output_dir, trainer, format_summary("lightning_hybrid run stopped", rows, label_width=13))
    raise SystemExit(EXIT_CODES.get(by, 1))


def describe(summary: dict[str, Any], output_dir: Path) -> str:
    """The summary as the job prints it."""
    rows = [
        ("steps", summary["steps"]),
        ("final train loss", summary["train_loss"]),
        ("final val loss", summary["val_loss"]),
        ("weight bits", summary["bits"]),
    ]
    if "quant_error_mean" in summary:
        rows.append(
            ("quant. error", f"{summary['quant_error_mean']} (mean ||W - Q(W)|| / ||W|| over quantized layers)")
        )
    if "file_bytes" in summary:
        rows += [
            (
                "packed export",
                f"{summary['packed_file']} ({summary['file_bytes']} bytes, "
                f"{summary['quantized_bits_per_weight']} bits per quantized weight)",
            ),
            (
                "compression",
                f"{summary['compression_vs_fp32']}x vs fp32, {summary['compression_vs_bf16']}x vs bf16 (whole model)",
            ),
        ]
    if "transformers_dir" in summary:
        rows.append(("transformers", f"{summary['transformers_dir']} (AutoModelForCausalLM.from_pretrained)"))
    if "gguf_file" in summary:
        gguf = f"{summary['gguf_file']} ({summary['gguf_bytes']} bytes, ternary layers {summary['gguf_type']})"
        rows.append(("gguf", gguf))
    if summary.get("curves"):
        rows.append(("curves", f"{summary['curves']} (losses, LR, λ and quantization error against the step)"))
    rows.append(("run directory", f"{output_dir} (CSV metrics in csv/metrics.csv)"))
    rows += artifacts(output_dir) + next_commands(summary, output_dir)
    return format_summary("lightning_hybrid run summary", rows, label_width=17)


def artifacts(output_dir: Path) -> list[tuple[str, str]]:
    """The run directory's other files, those that exist: weights, checkpoint, trackers, the run log."""
    found = [
        ("latent weights", WEIGHTS, "full precision: init_from= and distillation teachers read them"),
        ("checkpoint", "csv/checkpoints/last.ckpt", "the last step's trainer state"),
        ("tensorboard", "tensorboard", "tensorboard --logdir this"),
        ("wandb", "wandb", "offline: wandb sync its offline-run-* directory"),
        ("mlflow", "mlflow.db", "mlflow ui --backend-store-uri sqlite:///this"),
        ("run log", "train.log", "settings, warnings, this summary"),
    ]
    return [(label, f"{output_dir / name} ({what})") for label, name, what in found if (output_dir / name).exists()]


def next_commands(summary: dict[str, Any], output_dir: Path) -> list[tuple[str, str]]:
    """What to run next on this run: text and an evaluation from its packed model, a run from its weights."""
    rows = []
    if "file_bytes" in summary:
        rows += [
            ("generate", f"python -m lightning_hybrid.generate run={output_dir} \"prompt='def '\""),
            ("evaluate", f"python -m lightning_hybrid.evaluate run={output_dir} data.path=<a text>"),
        ]
    rows.append(("new run from it", f"python -m lightning_hybrid.train init_from={output_dir}"))
    return rows


@hydra.main(config_path=config_dir(), config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> float | None:
    """Returns the final val loss: the objective of sweepers such as hydra-optuna-sweeper. A mistake in
    the settings or the data prints one message and exits with code 2 (jobs/errors.py)."""
    return reported(lambda: _main(cfg))


def _main(cfg: DictConfig) -> float | None:
    overrides = list(HydraConfig.get().overrides.task)
    refuse_unknown_keys(overrides)
    if cfg.get("resume"):
        cfg = resumed_config(cfg, overrides)
    log_run_to_file(cfg)
    output_dir = cfg.resume if cfg.get("resume") else HydraConfig.get().runtime.output_dir  # a resume: its own
    return train(cfg, output_dir)["val_loss"]


def refuse_unknown_keys(overrides: Sequence[str]) -> None:
    """`+key=value` for a top-level key that nothing reads is a mistake (a typo, or an option of another
    tool, like `+ckpt_path`): refuse it rather than run without it."""
    primary = OmegaConf.to_container(OmegaConf.load(Path(config_dir()) / "train.yaml"))
    known = set(primary) | {next(iter(d)) if isinstance(d, dict) else d for d in primary.get("defaults", [])}
    for override in overrides:
        key = override.lstrip("~").split("=", 1)[0]
        if key.startswith("+") and key.lstrip("+").split(".", 1)[0] not in known:
            hint = " To continue a stopped run, use resume=<run dir>." if "ckpt" in key else ""
            raise ValueError(
                f"{override}: the main job has no setting `{key.lstrip('+').split('.', 1)[0]}` (its top-level "
                f"settings: {', '.join(sorted(known - {'defaults', '_self_', 'hydra'}))}).{hint}"
            )


if __name__ == "__main__":
    main()
