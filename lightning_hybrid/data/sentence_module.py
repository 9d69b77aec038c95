"""SentenceDataModule: tokenized sentences in padded batches ({"input_ids", "attention_mask"})."""

from __future__ import annotations

from collections.abc import Sequence

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader
from typing_extensions import override

from lightning_hybrid.utils.checks import integer, positive_int


def tokenize(tokenizer, sentences: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids of each sentence (a Hugging Face tokenizer's, with its special tokens), truncated."""
    integer("max_length", max_length, 2)
    return tokenizer(list(sentences), truncation=True, max_length=max_length)["input_ids"]


class PadCollate:
    """Pads id lists to the longest in the batch; a class, not a closure, so that workers can pickle it."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, rows: list[list[int]]) -> dict[str, torch.Tensor]:
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        return {"input_ids": ids, "attention_mask": mask}


def sentence_loader(rows: list[list[int]], pad_id: int, batch_size: int, shuffle: bool = False) -> DataLoader:
    return DataLoader(rows, batch_size=batch_size, shuffle=shuffle, collate_fn=PadCollate(pad_id))


class SentenceDataModule(pl.LightningDataModule):
    """Training batches of `sentences`, shuffled each epoch (under DDP Lightning shards them)."""

    def __init__(self, sentences: Sequence[str], tokenizer, batch_size: int = 32, max_length: int = 64) -> None:
        super().__init__()
        positive_int("batch_size", batch_size)
        if len(sentences) < batch_size:
            raise ValueError(f"{len(sentences)} sentences do not fill one batch of `batch_size`={batch_size}.")
        self.rows = tokenize(tokenizer, sentences, max_length)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.batch_size = batch_size

    @override
    def train_dataloader(self) -> DataLoader:
        return sentence_loader(self.rows, self.pad_id, self.batch_size, shuffle=True)
