"""LastCheckpoint: keep one checkpoint a run can always be resumed from, and stop a run cleanly."""

from __future__ import annotations

import math
import os
import random
import signal
import threading
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import Checkpoint
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from lightning.pytorch.utilities.exceptions import SIGTERMException
from typing_extensions import override

from lightning_hybrid.utils.checks import in_open_unit, positive_int

# Under DDP the ranks agree every this many steps whether one was asked to stop (a collective each time).
STOP_CHECK_EVERY = 10


class RunStopped(SystemExit):
    """Raised at a step boundary after a Ctrl-C: the run stops there, its last.ckpt written."""


class LastCheckpoint(Checkpoint):
    """Keeps `<dirpath>/last.ckpt` resumable: it is written every `every_n_steps` optimizer steps
    and whenever the run stops between two steps (Ctrl-C, SIGTERM, an exception), always atomically
    (written beside it, then renamed over it), so a half-written file never replaces a good one.

    Ctrl-C: the first finishes the current step, writes last.ckpt and stops the run (RunStopped, a
    SystemExit); a second stops at once, as Ctrl-C does without this callback. SIGTERM: Lightning stops
    the run after the current step and this callback writes last.ckpt. Under DDP the ranks agree on a
    Ctrl-C every STOP_CHECK_EVERY steps, and an exception other than these two leaves the last periodic
    checkpoint (it may have reached one rank only, and saving is collective). An exception raised inside a step
    (from the batch's start until this callback's on_train_batch_end, which Lightning runs after the other
    callbacks') leaves the last periodic checkpoint in place: the weights may be half updated.

    Being a Lightning `Checkpoint`, it replaces the ModelCheckpoint Lightning would otherwise add.

    A resumed run takes the same batches and random numbers as the uninterrupted one: the checkpoint
    holds torch's, numpy's and Python's global RNG states (rank 0's), restored before the first resumed
    batch, and the project's training loaders resume mid-epoch (lightning_hybrid.data.resumable).

    Args:
        dirpath: where last.ckpt goes; None: `<trainer.log_dir>/checkpoints` (ModelCheckpoint's place).
        every_n_steps: steps between periodic checkpoints; None: `lost_fraction` of the run's steps.
        lost_fraction: with every_n_steps=None, the share of the run a crash may lose (0.05: 100 of 2000).
    """

    FILENAME = "last.ckpt"

    def __init__(
        self, dirpath: str | os.PathLike | None = None, every_n_steps: int | None = None, lost_fraction: float = 0.05
    ) -> None:
        self.dirpath = None if dirpath is None else Path(dirpath)
        self.every_n_steps = None if every_n_steps is None else positive_int("every_n_steps", every_n_steps)
        self.lost_fraction = in_open_unit("lost_fraction", lost_fraction)
        self.stopped_by: str | None = None  # "Ctrl-C", "SIGTERM" or an exception's name, once the run stopped
        self.saved_step: int | None = None
        self._every = 1
        self._in_step = False
        self._stop_requested = False
        self._previous_sigint: Any = None
        self._restored_rng: dict[str, Any] | None = None

    @property
    def path(self) -> Path | None:
        return None if self.dirpath is None else self.dirpath / self.FILENAME

    # -- wiring -------------------------------------------------------------------------------------------
    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.dirpath is None:
            self.dirpath = Path(trainer.log_dir or trainer.default_root_dir) / "checkpoints"

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        total = trainer.estimated_stepping_batches
        fraction = self.lost_fraction * total if math.isfinite(total) else 1000
        self._every = self.every_n_steps or max(1, int(fraction))
        self.stopped_by, self._stop_requested = None, False
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread
            self._previous_sigint = signal.signal(signal.SIGINT, self._on_sigint)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self._stop_requested = True
        signal.signal(signal.SIGINT, self._previous_sigint or signal.default_int_handler)  # a second stops at once
        print("\nCtrl-C: finishing this step, then writing last.ckpt (Ctrl-C again stops at once).", flush=True)

    def _release_sigint(self) -> None:
        if self._previous_sigint is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._previous_sigint)
        self._previous_sigint = None

    @override
    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._release_sigint()

    # -- per step -----------------------------------------------------------------------------------------
    @override
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # Resumed at an epoch boundary: the new epoch's order is drawn from the RNG, as it was.
        if self._restored_rng is not None and trainer.fit_loop.epoch_loop.batch_progress.current.completed == 0:
            _set_rng(self._restored_rng)
            self._restored_rng = None

    @override
    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self._restored_rng is not None:  # resumed mid-epoch: the batch in hand continues the epoch's order
            _set_rng(self._restored_rng)
            self._restored_rng = None
        self._in_step = True

    @override
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        self._in_step = False
        if trainer.global_step % self._every == 0 and trainer.global_step != self.saved_step:
            self.save(trainer)
        if self._stop_wanted(trainer):
            self.stopped_by = "Ctrl-C"
            raise RunStopped(130)

    def _stop_wanted(self, trainer: pl.Trainer) -> bool:
        if trainer.world_size == 1:
            return self._stop_requested
        if trainer.global_step % STOP_CHECK_EVERY:
            return False
        return trainer.strategy.reduce_boolean_decision(self._stop_requested, all=False)

    @override
    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # A checkpoint of this step was written before the validation: write it again after, so that
        # the RNG state it holds is the one the run continues from.
        fitting = trainer.state.fn == TrainerFn.FITTING
        if fitting and not trainer.sanity_checking and self.saved_step == trainer.global_step:
            self.save(trainer, quiet=True)

    @override
    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._release_sigint()
        if self.stopped_by is None:
            self.stopped_by = _cause(exception)
        kept = f"{self.path} keeps step {self.saved_step}" if self.saved_step is not None else "no checkpoint yet"
        if self._in_step:
            rank_zero_warn(
                f"LastCheckpoint: the run stopped inside step {trainer.global_step} ({self.stopped_by}); {kept}."
            )
            return
        if trainer.world_size > 1 and not isinstance(exception, (RunStopped, SIGTERMException)):
            # An error may have reached one rank only: saving (a collective) would wait for the others forever.
            rank_zero_warn(f"LastCheckpoint: {self.stopped_by} under {trainer.world_size} processes; {kept}.")
            return
        if trainer.global_step != self.saved_step:
            self.save(trainer)

    def save(self, trainer: pl.Trainer, quiet: bool = False) -> None:
        """Write last.ckpt atomically (every rank calls this: saving a checkpoint is collective)."""
        path = self.path
        temporary = path.with_name(path.name + ".partial")
        trainer.save_checkpoint(temporary, weights_only=False)  # the whole state: weights, optimizer, loops
        if trainer.is_global_zero:
            os.replace(temporary, path)
        trainer.strategy.barrier("LastCheckpoint.save")
        self.saved_step = trainer.global_step
        if not quiet and self.stopped_by is not None:
            rank_zero_info(f"LastCheckpoint: wrote {path} (step {trainer.global_step}).")

    # -- checkpoint state -----------------------------------------------------------------------------------
    @override
    def state_dict(self) -> dict[str, Any]:
        return {"saved_step": -1 if self.saved_step is None else self.saved_step, **_rng_state()}

    @override
    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.saved_step = int(state.get("saved_step", -1))
        rng = {k: v for k, v in state.items() if k.startswith("rng.")}
        self._restored_rng = rng or None


def _cause(exception: BaseException) -> str:
    if isinstance(exception, RunStopped):
        return "Ctrl-C"
    if isinstance(exception, SIGTERMException):
        return "SIGTERM"
    return type(exception).__name__


def _rng_state() -> dict[str, Any]:
    """The global RNGs' states as tensors and numbers (a checkpoint loads them with weights_only=True)."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "rng.torch": torch.get_rng_state(),
        "rng.numpy.keys": torch.from_numpy(keys.astype(np.int64)),
        "rng.numpy.pos": int(pos),
        "rng.numpy.has_gauss": int(has_gauss),
        "rng.numpy.cached_gaussian": float(cached),
        "rng.python.version": int(version),
        "rng.python.state": torch.tensor(internal, dtype=torch.int64),
        "rng.python.gauss_next": -1.0 if gauss_next is None else float(gauss_next),
        "rng.python.has_gauss_next": gauss_next is not None,
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state.update({f"rng.cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    return state


def _set_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["rng.torch"])
    keys = state["rng.numpy.keys"].numpy().astype(np.uint32)
    np.random.set_state(
        ("MT19937", keys, state["rng.numpy.pos"], state["rng.numpy.has_gauss"], state["rng.numpy.cached_gaussian"])
    )
    gauss_next = state["rng.python.gauss_next"] if state["rng.python.has_gauss_next"] else None
    random.setstate((state["rng.python.version"], tuple(state["rng.python.state"].tolist()), gauss_next))
    cuda = [state[f"rng.cuda.{i}"] for i in range(sum(k.startswith("rng.cuda.") for k in state))]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
