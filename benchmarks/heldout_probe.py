"""Probe: LearnedScale with its hypergradient taken on held-out images instead of the training batch, on
the digits workload (the suite's multi-epoch task, where every LR-free method ends above tuned AdamW).
Diagnosis: each step costs one more forward and backward (with --every N, one per N steps, the form
LearnedScale(heldout_every=N) ships with its own split, its positive part only and from the second epoch on).

    python benchmarks/heldout_probe.py --source train --seed 0     # LearnedScale at heldout_every=0
    python benchmarks/heldout_probe.py --source split --seed 0     # 10% of the training images held out
    python benchmarks/heldout_probe.py --source val --seed 0       # the validation images (an upper bound)
    python benchmarks/heldout_probe.py --source split --every 10 --seed 0  # the held-out gap every 10 steps

Why: d loss / d s = g . Delta on a batch that earlier epochs already fitted measures the training loss,
which keeps falling at a large scale while the validation loss rises (the shipped LearnedScale learns
s ~ 0.005 on digits; AdamW's best base LR there is 1e-3). A gradient on images the run never trains on
measures the held-out loss instead. `split` trains on the other 90% of the training images (the
validation images stay untouched); `val` reads the validation images themselves, which leaks them into
the scale and only bounds what a held-out signal could give.

Prints the final val loss and the learned scale; the run directory is --out/<source>_every<N>_seed<seed>.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir
from torch.utils.data import DataLoader, TensorDataset

from lightning_hybrid import LearnedScale
from lightning_hybrid.data.digits import DigitsDataModule
from lightning_hybrid.jobs.configs import config_dir
from lightning_hybrid.jobs.train import train

HELD_OUT_SEED = 1234  # the split's own seed: every run holds out the same images


class HeldOutDigits(DigitsDataModule):
    """DigitsDataModule whose training images lose `held_out_fraction` of themselves to a held-out set."""

    def __init__(self, held_out_fraction: float = 0.1, **kwargs) -> None:
        super().__init__(**kwargs)
        x, y = self.train_set.tensors
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(HELD_OUT_SEED))
        n = round(held_out_fraction * len(y))
        self.held_out_set = TensorDataset(x[order[:n]], y[order[:n]])
        self.train_set = TensorDataset(x[order[n:]], y[order[n:]])


class HeldOutScale(LearnedScale):
    """LearnedScale with h = g_held_out(theta_t) . Delta_t + the decay term (control/scale.py), where
    theta_t = theta_0 + s * Delta_t is where the step started; the base optimizer's update is unchanged."""

    def __init__(self, source: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.source = source

    def on_fit_start(self, trainer, pl_module) -> None:
        super().on_fit_start(trainer, pl_module)
        dm = trainer.datamodule
        images = dm.held_out_set if self.source == "split" else dm.val_set
        loader = DataLoader(images, batch_size=dm.batch_size, shuffle=True, generator=torch.Generator().manual_seed(7))
        self._batches, self._module = itertools.cycle(list(loader)), pl_module

    def _after_step(self, optimizer, args, kwargs) -> None:
        if self._skip:
            return
        tuner, displacement, params = self.tuner, self.displacement, self._params
        before = tuner.scale
        after = [p.detach().clone() for p in params]
        displacement.place(params, before)  # back to theta_t for the held-out gradient
        with torch.enable_grad():
            grads = torch.autograd.grad(self._module.loss(next(self._batches)), params, allow_unused=True)
        with torch.no_grad():
            torch._foreach_copy_(params, after)
        h = displacement.hypergradient(params, list(grads), before, self.settings.decay)
        displacement.accumulate(params, before)
        tuner.update(h)
        displacement.place(params, tuner.scale)
        self.steps += 1


class AmortisedHeldOutScale(HeldOutScale):
    """LearnedScale whose every hypergradient is the training batch's plus a correction c, an average of
    (g_held_out - g_train) . Delta over the steps where one held-out batch was read (every `every` steps),
    both gradients taken at the same theta_t before the step: one more forward and backward per `every`."""

    def __init__(self, source: str, every: int, memory: float = 0.9, **kwargs) -> None:
        super().__init__(source, **kwargs)
        self.every, self.memory = every, memory
        self.correction = torch.zeros(())
        self.checks = 0

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        super().on_before_optimizer_step(trainer, pl_module, optimizer)
        if self._skip or self.steps % self.every:
            return
        params, delta = self._params, self.displacement.delta
        with torch.enable_grad():
            grads = torch.autograd.grad(self._module.loss(next(self._batches)), params, allow_unused=True)
        with torch.no_grad():
            gap = sum(
                ((h.float() - p.grad.float()) * d).sum() for h, p, d in zip(grads, params, delta) if h is not None
            )
            self.checks += 1
            self.correction.mul_(self.memory).add_((1 - self.memory) * gap)
        self._debiased = self.correction / (1 - self.memory**self.checks)

    def _after_step(self, optimizer, args, kwargs) -> None:
        if self._skip:
            return
        tuner, displacement, params = self.tuner, self.displacement, self._params
        before = tuner.scale
        h = displacement.hypergradient(params, [p.grad for p in params], before, self.settings.decay)
        if self.checks:
            h = h + self._debiased
        displacement.accumulate(params, before)
        tuner.update(h)
        displacement.place(params, tuner.scale)
        self.steps += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", choices=("train", "split", "val"), required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--every", type=int, default=0, help="amortised: one held-out batch every N steps")
    parser.add_argument("--out", type=Path, default=Path("runs/heldout_probe"))
    args = parser.parse_args()
    overrides = [
        "experiment=digits",
        "quant=ternary",
        "optimizer=adamw_cosine",
        "callbacks=learned_scale",
        f"seed={args.seed}",
        "trainer.val_check_interval=50",
        "callbacks.progress_bar=null",
        "callbacks.checkpoint=null",
        "export_formats=[]",
    ]
    callbacks = []
    if args.source != "train":  # the probe's callback replaces the configured LearnedScale
        overrides.append("~callbacks.learned_scale")
        callbacks = [AmortisedHeldOutScale(args.source, args.every) if args.every else HeldOutScale(args.source)]
    if args.source == "split":
        overrides.append(f"data._target_={__name__}.HeldOutDigits")
    with initialize_config_dir(config_dir(), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    summary = train(cfg, args.out / f"{args.source}_every{args.every}_seed{args.seed}", extra_callbacks=callbacks)
    scale = next(v for k, v in summary.items() if isinstance(v, dict) and "final_scale" in v)
    print(f"source={args.source} every={args.every} seed={args.seed} val_loss={summary['val_loss']} scale={scale}")


if __name__ == "__main__":
    main()
