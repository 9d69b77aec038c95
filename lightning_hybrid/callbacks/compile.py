"""CompileModel: torch.compile the LightningModule's forward in place, once the other callbacks have set
the model up (TernaryQAT swaps its layers in `setup`, so this callback goes after it in the list)."""

from __future__ import annotations

import lightning.pytorch as pl
from lightning.pytorch.utilities import rank_zero_info

from lightning_hybrid.utils.checks import choice

MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


class CompileModel(pl.Callback):
    """torch.compile for training: the LightningModule is compiled in place (nn.Module.compile), so that
    what its steps compute through `self(x)` (a LanguageModel's whole GPT) runs compiled while its hooks,
    losses and logging stay eager, and parameter names, state_dict keys, checkpoints and exports are those
    of the eager model.

    Args:
        mode: torch.compile's mode (default "default").
        dynamic: torch.compile's `dynamic` (None: let Dynamo decide after a shape changes).

    Compilation happens on the first step (inductor builds C++ on a CPU: 27 s for the main job's ternary
    GPT on 2 cores from a cold cache); benchmarks/compile_step.py measures when it pays. Nothing is
    checkpointed: a resumed run compiles again.
    """

    def __init__(self, mode: str = "default", dynamic: bool | None = None) -> None:
        self.mode = choice("mode", mode, MODES)
        self.dynamic = choice("dynamic", dynamic, (None, True, False))
        self.compiled = False

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if getattr(pl_module, "_compiled_call_impl", None) is None:  # once, across fit and validate
            pl_module.compile(mode=self.mode, dynamic=self.dynamic)
            self.compiled = True
            rank_zero_info(f"CompileModel: torch.compile(mode={self.mode!r}) on {type(pl_module).__name__}.forward.")
