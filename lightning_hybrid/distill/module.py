"""Distillation: a LightningModule that trains any student LightningModule against a frozen teacher.

A wrapper, not a callback: the extra loss must reach the tensor the Trainer backpropagates, which a
callback cannot change. The wrapper delegates training_step (whose loss is the task loss),
validation_step, test_step, predict_step, forward and configure_optimizers to the student, and adds the
teacher's terms (distill/losses.py). The teacher gets exactly the inputs of the student's first
forward call in each training step (recorded by a hook), so it must take the same inputs.

The teacher is not a submodule: it is not in checkpoints or the optimizer, TernaryQAT on the wrapper
converts only the student, and DDP does not wrap it. It stays in eval mode without gradients, on
`teacher_device` (default: the student's) in `teacher_dtype` (default: its own).
"""

from __future__ import annotations

from collections.abc import Mapping

import lightning.pytorch as pl
import torch
from torch import nn
from typing_extensions import override

from lightning_hybrid.distill.capture import Capture, main_tensor, moved, named_layers
from lightning_hybrid.distill.losses import DistillLoss


class Distillation(pl.LightningModule):
    """Train `student` on its own loss plus KL to `teacher`'s logits and distances between hidden states.

    Args:
        student: any LightningModule with automatic optimization whose training_step calls the module
            itself (`self(...)`) and returns its loss (a tensor or a dict with "loss"), or None for a
            student with no task of its own (task_weight=0), such as distill.sentence.SentenceStudent.
        teacher: an nn.Module taking the same inputs as the student's forward.
        temperature, task_weight, kl_weight, hidden_weight, hidden_loss: see DistillLoss.
        hidden_pairs: {student layer name: teacher layer name}; the outputs' main tensors must have the
            same shape (no projection is learned).
        teacher_device, teacher_dtype: where and in what dtype the teacher runs.
    """

    def __init__(
        self,
        student: pl.LightningModule,
        teacher: nn.Module,
        temperature: float = 2.0,
        task_weight: float = 1.0,
        kl_weight: float = 1.0,
        hidden_weight: float = 0.0,
        hidden_pairs: Mapping[str, str] | None = None,
        hidden_loss: str = "mse",
        teacher_device: str | torch.device | None = None,
        teacher_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(student, pl.LightningModule):
            raise TypeError(f"`student` must be a LightningModule, got {type(student).__name__}.")
        if not isinstance(teacher, nn.Module):
            raise TypeError(f"`teacher` must be an nn.Module, got {type(teacher).__name__}.")
        self.student = student
        self.__dict__["teacher"] = teacher  # not a submodule: see the module docstring
        self.loss_fn = DistillLoss(temperature, task_weight, kl_weight, hidden_weight, hidden_loss)
        self.hidden_pairs = dict(hidden_pairs or {})
        if hidden_weight and not self.hidden_pairs:
            raise ValueError("`hidden_weight` > 0 needs `hidden_pairs`, {student layer: teacher layer}.")
        self._student_layers = named_layers(student, list(self.hidden_pairs), "hidden_pairs")
        self._teacher_layers = named_layers(teacher, list(self.hidden_pairs.values()), "hidden_pairs")
        self.teacher_device = None if teacher_device is None else torch.device(teacher_device)
        self.teacher_dtype = teacher_dtype
        teacher.eval().requires_grad_(False)

    @override
    def setup(self, stage: str) -> None:
        if not self.student.automatic_optimization:
            raise ValueError("Distillation needs a student with automatic optimization (it adds to its loss).")

    @override
    def on_fit_start(self) -> None:
        self.teacher.to(device=self.teacher_device or self.device, dtype=self.teacher_dtype).eval()

    @override
    def forward(self, *args, **kwargs):
        return self.student(*args, **kwargs)

    @override
    def configure_optimizers(self):
        return self.student.configure_optimizers()

    @override
    def training_step(self, batch, batch_idx: int):
        task, student = self._student_step(batch, batch_idx)
        args, kwargs = student.inputs
        device = next(self.teacher.parameters(), torch.empty(0)).device
        with torch.no_grad(), Capture(self.teacher, self._teacher_layers, record_inputs=False) as teacher:
            output = self.teacher(*moved(args, device, self.teacher_dtype), **moved(kwargs, device, self.teacher_dtype))
        teacher_hidden = {s: teacher.outputs[t].to(self.device) for s, t in self.hidden_pairs.items()}
        self._check_shapes(student.outputs, teacher_hidden)
        student_logits = main_tensor(student.output, "the student")
        teacher_logits = main_tensor(output, "the teacher").to(self.device)
        parts = self.loss_fn(task, student_logits, teacher_logits, student.outputs, teacher_hidden)
        self.log_dict({f"distill/{k}": v.detach() for k, v in parts.items()}, on_step=True, on_epoch=False)
        return parts["loss"]

    def _student_step(self, batch, batch_idx):
        self.student._current_fx_name = self._current_fx_name  # lets the student's self.log reach the Trainer
        with Capture(self.student, self._student_layers, record_inputs=True) as student:
            out = self.student.training_step(batch, batch_idx)
        if student.inputs is None:
            raise RuntimeError(
                "the student's training_step never called the student (`self(...)`), so the teacher has no inputs."
            )
        if out is None and self.loss_fn.task_weight:
            raise ValueError(
                f"the student's training_step returned no loss while `task_weight` is {self.loss_fn.task_weight}: "
                "a student without a task of its own needs task_weight=0."
            )
        task = out["loss"] if isinstance(out, Mapping) else out
        return (task if self.loss_fn.task_weight else None), student

    def _check_shapes(self, student_hidden, teacher_hidden) -> None:
        for name, s in student_hidden.items():
            if s.shape != teacher_hidden[name].shape:
                raise ValueError(
                    f"`hidden_pairs` {name!r} -> {self.hidden_pairs[name]!r}: student output {tuple(s.shape)} "
                    f"and teacher output {tuple(teacher_hidden[name].shape)} differ; pair layers of the same width."
                )

    @override
    def validation_step(self, batch, batch_idx: int):
        self.student._current_fx_name = self._current_fx_name
        return self.student.validation_step(batch, batch_idx)

    @override
    def test_step(self, batch, batch_idx: int):
        self.student._current_fx_name = self._current_fx_name
        return self.student.test_step(batch, batch_idx)

    @override
    def predict_step(self, batch, batch_idx: int):
        return self.student.predict_step(batch, batch_idx)
