"""TernaryQAT: quantization-aware training for any LightningModule, as a callback."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_info
from typing_extensions import override

from lightning_hybrid.callbacks._plan import held_out_batches, step_loss
from lightning_hybrid.quant import reference as ref
from lightning_hybrid.quant.convert import ConversionReport, convert
from lightning_hybrid.quant.linear import bit_linears
from lightning_hybrid.quant.metrics import QuantizationError
from lightning_hybrid.quant.precision import PrecisionAllocator, PrecisionPlan
from lightning_hybrid.quant.schedule import set_quant_lambda, warmup_lambda
from lightning_hybrid.utils.checks import integer, non_negative_int

PlanLike = Mapping[str, float] | str | os.PathLike | PrecisionPlan | PrecisionAllocator


class TernaryQAT(pl.Callback):
    """Turn the nn.Linear layers of the LightningModule into BitLinear layers before the optimizers exist.

    Args:
        bits: the width of every converted layer: 1.58 (BitNet b1.58 ternary, the default), 1 (BitNet
            binary), or 2, 4 or 8 (symmetric integer weights with per-row scales, as mixed-precision plans
            use them); quant/formats.py lists the widths.
        include: fnmatch patterns on fully qualified module names; only matching Linears are converted.
        exclude: patterns kept at full precision. None applies the default rule (output heads named
            lm_head, head, classifier, ... and Linears tied to an embedding; see quant/convert.py).
        warmup_steps: lam goes linearly from 0 to 1 over these optimizer steps, with the effective
            weight W + lam * (Q(W) - W) (and likewise for activations); 0 quantizes fully from the start.
        act_bits: per-token activation bits (8), or None to leave activations at full precision.
        log_every_n_steps: how often to log lam and the quantization error (default: the Trainer's).
        plan: per-layer bits (mixed precision): a {layer name: bits} mapping, a PrecisionPlan or the path
            of one saved as JSON, or a PrecisionAllocator, which measures the layers' sensitivity on a few
            validation batches at the start of fit (after any checkpoint restore) and chooses the plan
            (printed, and saved to its `save_to` in the logger's directory). Layers the plan does not
            name get `bits`. The plan is kept in this callback's checkpoint state.

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
        plan: PlanLike | None = None,
    ) -> None:
        self.bits = ref.check_bits(bits)
        self.include, self.exclude = include, exclude
        self.warmup_steps = non_negative_int("warmup_steps", warmup_steps)
        self.act_bits = ref.check_act_bits(act_bits)
        self.log_every_n_steps = integer("log_every_n_steps", log_every_n_steps, 1, allowed=(None,))
        self.quant_lambda = warmup_lambda(0, self.warmup_steps)
        self.plan = plan
        self.plan_bits: dict[str, float] | None = _fixed_plan(plan)
        self.report: ConversionReport | None = None
        self._layers: dict = {}
        self._metric: QuantizationError | None = None
        self._last_logged_step = -1

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.report = convert(
            pl_module, self.bits, self.include, self.exclude, act_bits=self.act_bits, plan=self.plan_bits
        )
        if self.report.converted:  # a later stage (validate after fit) finds them converted: stay quiet
            rank_zero_info(f"TernaryQAT(bits={self.bits}): {self.report.describe()}")
        self._layers = bit_linears(pl_module)
        self._metric = QuantizationError(list(self._layers))
        set_quant_lambda(self._layers, self.quant_lambda)

    @override
    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # After a checkpoint restore (load_state_dict has set the plan it was trained with) and on the
        # weights training starts from, so an allocator measures the model it plans for.
        if self.plan_bits is None and isinstance(self.plan, PrecisionAllocator):
            self._apply_plan(self._allocate(trainer, pl_module))

    def _allocate(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, float]:
        allocator: PrecisionAllocator = self.plan  # type: ignore[assignment]
        batches = held_out_batches(trainer, pl_module, allocator.num_batches)
        # quant_lambda 0 makes every BitLinear compute exactly as the nn.Linear it replaced, so each
        # layer's effect is measured alone
        set_quant_lambda(self._layers, 0.0)
        try:
            plan = allocator.allocate(pl_module, self._layers, batches, allocator.loss_fn or step_loss)
        finally:
            set_quant_lambda(self._layers, self.quant_lambda)
        bits = trainer.strategy.broadcast(plan.bits, src=0)  # every rank quantizes alike
        rank_zero_info(f"PrecisionAllocator plan:\n{plan.table()}")
        if allocator.save_to is not None and trainer.is_global_zero:
            path = Path(allocator.save_to)
            if not path.is_absolute():
                path = Path(trainer.logger.save_dir if trainer.logger else trainer.default_root_dir) / path
            path.parent.mkdir(parents=True, exist_ok=True)
            plan.save(path)
            rank_zero_info(f"PrecisionAllocator: plan saved to {path} (and {path}.md)")
        return bits

    def average_bits(self) -> float:
        """Parameter-weighted average weight width of the quantized layers."""
        layers = list(self._layers.values())
        total = sum(layer.weight.numel() for layer in layers)
        return sum(layer.weight.numel() * layer.bits for layer in layers) / max(total, 1)

    @override
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.quant_lambda = warmup_lambda(trainer.global_step, self.warmup_steps)
        set_quant_lambda(self._layers, self.quant_lambda)

    @override
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx) -> None:
        every = self.log_every_n_steps or trainer.log_every_n_steps
        step = trainer.global_step
        if step % every or step == self._last_logged_step:
            return
        self._last_logged_step = step
        pl_module.log("quant/lambda", self.quant_lambda, on_step=True, on_epoch=False)
        pl_module.log_dict(
            {f"quant_error/{k}": v for k, v in self.quantization_error().items()}, on_step=True, on_epoch=False
        )

    def quantization_error(self) -> dict:
        """Current ||W - Q(W)|| / ||W|| per quantized layer and its mean."""
        if self._metric is None:
            raise RuntimeError(
                "TernaryQAT.quantization_error() needs the converted model: call it after the Trainer's setup."
            )
        self._metric.reset()
        self._metric.update(self._layers)
        return self._metric.compute()

    @override
    def state_dict(self) -> dict[str, Any]:
        state = {"quant_lambda": self.quant_lambda, "bits": self.bits, "warmup_steps": self.warmup_steps}
        if self.plan_bits is not None:
            state["plan"] = json.dumps(self.plan_bits, sort_keys=True)
        return state

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        saved_bits = state_dict.get("bits", self.bits)
        if saved_bits != self.bits:
            raise ValueError(
                f"The checkpoint was trained with TernaryQAT(bits={saved_bits}), this callback has bits={self.bits}. "
                "Resume with the same bits, or load only the model weights to change precision."
            )
        self.quant_lambda = float(state_dict.get("quant_lambda", self.quant_lambda))
        set_quant_lambda(self._layers, self.quant_lambda)
        if "plan" in state_dict:
            self._apply_plan(json.loads(state_dict["plan"]))

    def _apply_plan(self, saved: dict[str, float]) -> None:
        """Give every named layer its width (a checkpoint's plan, or the allocator's)."""
        missing = sorted(set(saved) - set(self._layers))
        if missing:
            raise ValueError(f"The precision plan names layers this model does not quantize: {missing[:5]}.")
        for name, bits in saved.items():
            self._layers[name].bits = ref.check_bits(bits, f"plan[{name!r}]")
        self.plan_bits = dict(saved)


def _fixed_plan(plan: Any) -> dict[str, float] | None:
    """The bits of a plan given up front (mapping, PrecisionPlan, JSON path); None for none or an allocator."""
    if plan is None or isinstance(plan, PrecisionAllocator):
        return None
    if isinstance(plan, (str, os.PathLike)):
        plan = PrecisionPlan.load(plan)
    if isinstance(plan, PrecisionPlan):
        plan = plan.bits
    if not isinstance(plan, Mapping):
        raise ValueError(
            f"`plan` must be a {{layer: bits}} mapping, a PrecisionPlan, the path of a saved one or a "
            f"PrecisionAllocator, got {type(plan).__name__}."
        )
    return {str(name): ref.check_bits(bits, f"plan[{name!r}]") for name, bits in plan.items()}
