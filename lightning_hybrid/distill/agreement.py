"""How closely a student's sentence embeddings follow a teacher's (plain torch, no Lightning).

* mean cosine: the average over sentences of cos(teacher(s), student(s)); 1 is a perfect copy.
* top-1 agreement: over a retrieval set, the fraction of sentences whose nearest other sentence
  (cosine, itself excluded) is the same under the student as under the teacher: whether the student
  would return the teacher's search results.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn


def mean_cosine(teacher: torch.Tensor, student: torch.Tensor) -> float:
    _check_pair(teacher, student)
    return float(F.cosine_similarity(teacher.double(), student.double(), dim=-1).mean())


def nearest_other(embeddings: torch.Tensor) -> torch.Tensor:
    """For each row, the index of the most cosine-similar other row."""
    if embeddings.dim() != 2 or embeddings.shape[0] < 2:
        raise ValueError(f"need a [n >= 2, dim] matrix of embeddings, got shape {tuple(embeddings.shape)}.")
    unit = F.normalize(embeddings.double(), dim=-1)
    similarity = unit @ unit.T
    similarity.fill_diagonal_(float("-inf"))
    return similarity.argmax(dim=1)


def top1_agreement(teacher: torch.Tensor, student: torch.Tensor) -> float:
    _check_pair(teacher, student)
    return float((nearest_other(teacher) == nearest_other(student)).double().mean())


def _check_pair(teacher: torch.Tensor, student: torch.Tensor) -> None:
    if teacher.shape != student.shape:
        raise ValueError(
            f"teacher and student embeddings differ in shape: {tuple(teacher.shape)} vs {tuple(student.shape)}."
        )


@torch.no_grad()
def embed(encoder: nn.Module, batches: Iterable[Mapping[str, torch.Tensor]]) -> torch.Tensor:
    """encoder(**batch) over the batches in eval mode (the encoder's mode is restored), on CPU in fp32."""
    device = next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    try:
        return torch.cat([encoder(**{k: v.to(device) for k, v in b.items()}).float().cpu() for b in batches])
    finally:
        encoder.train(was_training)
