"""The held-out correction to a learned scale's hypergradient.

d loss / d s = g . Delta on a training batch measures the training loss. When a run revisits its data
(several epochs), that loss keeps falling at a step size past the one that generalizes best, and a
scale learned from it overshoots (LearnedScale on the digits MLP: s ~ 5e-3 where AdamW's best LR is
1e-3). Every `every` steps a batch the run never trains on gives g_held_out at the same weights, and

    gap = (g_held_out - g_train) . Delta

is how much the training batch's hypergradient understates the held-out one. Its running average,
debiased as Adam's moments are, is added to every step's hypergradient where it is positive: one
held-out forward and backward per `every` steps instead of one a step (none in the first epoch, whose
training batches are unseen and so held-out already), the learner still updated every step.

Only a positive average counts: held-out evidence may slow the scale, never speed it. On data the run
has not fitted the gap is batch noise around 0, about as large as g . Delta itself on the digits MLP;
adding the whole average (LearnedScale(heldout_one_sided=False)) ended one of three digits seeds at val
loss 0.090 with its scale at 5.3e-3, where the positive part ends all three at 0.024-0.034 with scales
near 1.3e-3 (benchmarks/README.md).
"""

from __future__ import annotations

import torch

from lightning_hybrid.utils.checks import in_open_unit


class GapAverage:
    """An exponential average of the gaps observed, debiased; `correction` is its positive part."""

    def __init__(self, memory: float = 0.9, device: torch.device | str = "cpu", count: int = 1) -> None:
        self.memory = in_open_unit("heldout_memory", memory)
        self.total = torch.zeros(count if count > 1 else (), device=device)
        self.observed = 0

    def observe(self, gap: torch.Tensor) -> None:
        """Fold in one gap (0-d, or one per scale). A non-finite gap (a held-out loss that overflowed)
        counts as the current average, so it never reaches the scale; checked on the device, no host sync."""
        gap = torch.where(torch.isfinite(gap), gap, self.value)
        self.total.mul_(self.memory).add_(gap, alpha=1.0 - self.memory)
        self.observed += 1

    @property
    def value(self) -> torch.Tensor:
        if not self.observed:
            return torch.zeros_like(self.total)
        return self.total / (1.0 - self.memory**self.observed)

    @property
    def correction(self) -> torch.Tensor:
        """What is added to the hypergradient: the average where it is positive, else 0."""
        return self.value.clamp(min=0.0)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"heldout.total": self.total.clone(), "heldout.observed": torch.tensor(self.observed)}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if "heldout.total" not in state:
            raise ValueError(
                "the checkpoint's LearnedScale kept no held-out average: it was written with heldout_every=0; "
                "resume it with the same heldout_every."
            )
        self.total.copy_(state["heldout.total"])
        self.observed = int(state["heldout.observed"])


def difference(heldout: list[torch.Tensor | None], train: list[torch.Tensor | None]) -> list[torch.Tensor | None]:
    """g_held_out - g_train per tensor (None where neither loss reaches the tensor; a missing one counts as 0)."""
    out: list[torch.Tensor | None] = []
    for h, t in zip(heldout, train):
        if h is None and t is None:
            out.append(None)
        else:
            out.append((h.float() if h is not None else 0.0) - (t.float() if t is not None else 0.0))
    return out
