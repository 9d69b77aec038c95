"""TernaryQAT: quantization-aware training for any LightningModule, as a callback."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_info

from lightning_hybrid.quant import reference as ref
from lightning_hybrid.quant.convert import ConversionReport, bit_linears, convert, set_quant_lambda, warmup_lambda
from lightning_hybrid.quant.metrics import QuantizationError


def _is_int(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


class TernaryQAT(pl.Callback):
    """Turn the nn.Linear layers of the LightningModule into BitLinear layers before the optimizers exist.

    Args:
        bits: 1.58 (BitNet b1.58 ternary) or 1 (BitNet binary).
        include: fnmatch patterns on fully qualified module names; only matching Linears are converted.
        exclude: patterns kept at full precision. None applies the default rule (output heads named
            lm_head, head, classifier, ... and Linears tied to an embedding; see quant/convert.py).
        warmup_steps: lam goes linearly from 0 to 1 over these optimizer steps, with the effective
            weight W + lam * (Q(W) - W) (and likewise for activations); 0 quantizes fully from the start.
        act_bits: per-token activation bits (8), or None to leave activations at full precision.
        log_every_n_steps: how often to log lam and the quantization error (default: the Trainer's).

    The model's state_dict keys do not change (BitLinear keeps `weight` and `bias`), so checkpoints load
    into the unconverted module too; lam lives in this callback's checkpoint state.
    """

    def __init__(
        self,
        bits: float = 1.58,
        include: str | Sequence[str] | None = None,
        exclude: str | Sequence[str] | None = None,
        warmup_steps: int = 0,
        act_bits: int | None = 8,
        log_every_n_steps: int | None = None,
    ) -> None:
        self.bits = ref.check_bits(bits)
        self.include, self.exclude = include, exclude
        if not _is_int(warmup_steps, minimum=0):
            raise ValueError(f"`warmup_steps` must be a non-negative integer, got {warmup_steps!r}.")
        self.warmup_steps = warmup_steps
        self.act_bits = ref.check_act_bits(act_bits)
        if log_every_n_steps is not None and not _is_int(log_every_n_steps, minimum=1):
            raise ValueError(f"`log_every_n_steps` must be a positive integer or None, got {log_every_n_steps!r}.")
        self.log_every_n_steps = log_every_n_steps
        self.quant_lambda = warmup_lambda(0, self.warmup_steps)
        self.report: ConversionReport | None = None
        self._layers: dict = {}
        self._metric: QuantizationError | None = None
        self._last_logged_step = -1

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.report = convert(pl_module, self.bits, self.include, self.exclude, act_bits=self.act_bits)
        if self.report.converted:  # a later stage (validate after fit) finds them converted: stay quiet
            rank_zero_info(f"TernaryQAT(bits={self.bits}): {self.report.describe()}")
        self._layers = bit_linears(pl_module)
        self._metric = QuantizationError(list(self._layers))
        set_quant_lambda(self._layers, self.quant_lambda)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int) -> None:
        self.quant_lambda = warmup_lambda(trainer.global_step, self.warmup_steps)
        set_quant_lambda(self._layers, self.quant_lambda)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx) -> None:
        every = self.log_every_n_steps or trainer.log_every_n_steps
        step = trainer.global_step
        if step % every or step == self._last_logged_step:
            return
        self._last_logged_step = step
        pl_module.log("quant/lambda", self.quant_lambda, on_step=True, on_epoch=False)
        pl_module.log_dict({f"quant_error/{k}": v for k, v in self.quantization_error().items()}, on_step=True, on_epoch=False)

    def quantization_error(self) -> dict:
        """Current ||W - Q(W)|| / ||W|| per quantized layer and its mean."""
        if self._metric is None:
            raise RuntimeError("TernaryQAT.quantization_error() needs the converted model: call it after the Trainer's setup.")
        self._metric.reset()
        self._metric.update(self._layers)
        return self._metric.compute()

    def state_dict(self) -> dict[str, Any]:
        return {"quant_lambda": self.quant_lambda, "bits": self.bits, "warmup_steps": self.warmup_steps}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved_bits = state_dict.get("bits", self.bits)
        if saved_bits != self.bits:
            raise ValueError(
                f"The checkpoint was trained with TernaryQAT(bits={saved_bits}), this callback has bits={self.bits}. "
                "Resume with the same bits, or load only the model weights to change precision."
            )
        self.quant_lambda = float(state_dict.get("quant_lambda", self.quant_lambda))
        set_quant_lambda(self._layers, self.quant_lambda)
