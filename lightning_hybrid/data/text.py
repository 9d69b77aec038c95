"""TextDataModule: next-token windows over a byte- or char-level corpus."""

from __future__ import annotations

import hashlib
import os

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch.utils.data import DataLoader, Dataset
from typing_extensions import override

from lightning_hybrid.data.corpora import read_bytes
from lightning_hybrid.data.resumable import resumable_shuffled
from lightning_hybrid.utils.checks import choice, in_open_unit, non_negative_int, number, positive_int

TOKENIZERS = ("byte", "char")
MIN_VAL_BATCHES = 4  # fewer validation batches than this: warn


class Windows(Dataset):
    """(x, y) pairs of length `block_size` starting at `starts` in a 1-D token tensor."""

    def __init__(self, tokens: torch.Tensor, block_size: int, starts: torch.Tensor) -> None:
        self.tokens, self.block_size, self.starts = tokens, block_size, starts

    def __len__(self) -> int:
        return len(self.starts)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        s = int(self.starts[i])
        chunk = self.tokens[s : s + self.block_size + 1]
        return chunk[:-1], chunk[1:]

    def stacked(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Items start..stop-1 already collated (what a DataLoader would build, without 1 call per item)."""
        chunks = self.tokens[self.starts[start:stop, None] + torch.arange(self.block_size + 1)]
        return chunks[:, :-1], chunks[:, 1:]

    def fingerprint(self) -> str:
        """A digest of the tokens, the window length and the start positions (keys cached clusterings)."""
        h = hashlib.sha256(str(self.block_size).encode())
        for t in (self.tokens, self.starts):
            h.update(t.contiguous().numpy().tobytes())
        return h.hexdigest()


def encode(raw: bytes, tokenizer: str) -> tuple[torch.Tensor, int, list[str] | None]:
    """Token ids, vocabulary size and (for char) the sorted alphabet."""
    if tokenizer == "byte":
        return torch.frombuffer(bytearray(raw), dtype=torch.uint8).long(), 256, None
    text = raw.decode("utf-8", errors="replace")
    alphabet = sorted(set(text))
    index = {c: i for i, c in enumerate(alphabet)}
    return torch.tensor([index[c] for c in text], dtype=torch.long), len(alphabet), alphabet


def heldout_starts(n: int, block_size: int, fraction: float, chunk: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Window starts in an n-token text of which `fraction` of the chunks of `chunk` tokens are held out
    (chunk i when floor((i + 1) * fraction) > floor(i * fraction): evenly spread): the training starts
    (windows of block_size + 1 tokens with no held-out token) and the held-out ones (all held out)."""
    chunk_id = torch.arange(n) // chunk
    held = (torch.floor((chunk_id + 1) * fraction) > torch.floor(chunk_id * fraction)).long()
    count = torch.cat([torch.zeros(1, dtype=torch.long), held.cumsum(0)])  # held tokens before each position
    starts = torch.arange(n - block_size)
    inside = count[starts + block_size + 1] - count[starts]  # held tokens in each window
    return starts[inside == 0], starts[inside == block_size + 1]


class TextDataModule(pl.LightningDataModule):
    """Language-modelling data: the first (1 - val_fraction) of the text trains, the rest validates.

    Training samples random windows (every start position is one item, shuffled each epoch, as nanoGPT's
    random batches); validation uses `val_windows` evenly spaced windows of the held-out text, the same
    ones every time, so val losses of different runs are comparable.

    Args:
        path: a text file or directory; None embeds the Python standard library's source (no download).
        tokenizer: "byte" (vocab 256) or "char" (the text's sorted alphabet, nanoGPT's shakespeare_char).
        encoding: the text's encoding (re-encoded as UTF-8 for the byte tokenizer); a binary file, or one that
            does not decode in it, is refused.
        heldout_fraction: that fraction of the training text, in chunks of `heldout_chunk` tokens spread
            evenly through it, is not trained on but served, every window inside a chunk, by
            `heldout_dataloader()` (LearnedScale(heldout_every=...) reads its evidence there); 0: none.
            Spread, not one piece: the last 10% of tinyshakespeare's training text held out in one piece
            (the play the validation text continues) raised a ternary run's val loss at step 1900 by 0.12.
            A run that the attached Trainer's max_steps ends within its first epoch holds out nothing
            (said once): held-out batches are read from the second epoch on, and the text is worth more
            trained on (benchmarks/README.md).
        heldout_in_one_epoch_runs: hold out heldout_fraction even in such a run.
    """

    def __init__(
        self,
        path: str | os.PathLike | None = None,
        tokenizer: str = "byte",
        block_size: int = 64,
        batch_size: int = 12,
        val_fraction: float = 0.1,
        val_windows: int = 480,
        max_bytes: int | None = 2_000_000,
        num_workers: int = 0,
        encoding: str = "utf-8",
        heldout_fraction: float = 0.0,
        heldout_chunk: int = 2048,
        heldout_in_one_epoch_runs: bool = False,
    ) -> None:
        super().__init__()
        choice("tokenizer", tokenizer, TOKENIZERS)
        in_open_unit("val_fraction", val_fraction)
        self.heldout_fraction = number("heldout_fraction", heldout_fraction, 0.0, 1.0, open_high=True)
        self.heldout_chunk = positive_int("heldout_chunk", heldout_chunk)
        if not isinstance(heldout_in_one_epoch_runs, bool):
            raise ValueError(f"`heldout_in_one_epoch_runs` must be True or False, got {heldout_in_one_epoch_runs!r}.")
        self.heldout_in_one_epoch_runs = heldout_in_one_epoch_runs
        for name, value in (("block_size", block_size), ("batch_size", batch_size), ("val_windows", val_windows)):
            positive_int(name, value)
        non_negative_int("num_workers", num_workers)
        self.save_hyperparameters()
        self.path, self.tokenizer, self.max_bytes, self.encoding = path, tokenizer, max_bytes, encoding
        self.block_size, self.batch_size, self.num_workers = block_size, batch_size, num_workers
        self.val_fraction, self.val_windows = val_fraction, val_windows
        self._tokens: torch.Tensor | None = None
        self._vocab_size = 0

    def _load(self) -> torch.Tensor:
        if self._tokens is None:
            self._tokens, self._vocab_size, _ = encode(
                read_bytes(self.path, self.max_bytes, encoding=self.encoding), self.tokenizer
            )
        return self._tokens

    def model_kwargs(self) -> dict[str, int]:
        """What the model needs to know about the data (the main job passes it to the model config)."""
        return {"vocab_size": self.vocab_size}

    @property
    def vocab_size(self) -> int:
        self._load()
        return self._vocab_size

    def _split(self) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self._load()
        n_train = int(len(tokens) * (1 - self.val_fraction))
        train, val = tokens[:n_train], tokens[n_train:]
        if min(len(train), len(val)) <= self.block_size + 1:
            raise ValueError(
                f"The corpus ({len(tokens)} tokens) is too short for block_size={self.block_size} with "
                f"val_fraction={self.val_fraction}: each split needs more than block_size + 1 tokens."
            )
        return train, val

    def _ends_in_first_epoch(self, windows: int) -> bool:
        """Whether the attached Trainer's max_steps ends the run before a second pass over `windows`
        training windows (False without a Trainer or a max_steps)."""
        trainer = self.trainer
        if trainer is None or trainer.max_steps is None or trainer.max_steps < 0:
            return False
        drawn = trainer.max_steps * trainer.accumulate_grad_batches * self.batch_size * trainer.world_size
        return drawn <= windows

    @override
    def setup(self, stage: str | None = None) -> None:
        train, val = self._split()
        fraction = self.heldout_fraction
        if fraction and not self.heldout_in_one_epoch_runs and self._ends_in_first_epoch(len(train) - self.block_size):
            rank_zero_info(
                f"TextDataModule: heldout_fraction={fraction} holds out nothing: the Trainer's max_steps ends the "
                "run within its first epoch, whose batches are all unseen (LearnedScale reads held-out batches "
                "from the second epoch on). heldout_in_one_epoch_runs=true holds out anyway."
            )
            fraction = 0.0
        train_starts, held_starts = heldout_starts(len(train), self.block_size, fraction, self.heldout_chunk)
        if fraction and not (len(train_starts) and len(held_starts)):
            raise ValueError(
                f"TextDataModule: heldout_fraction={self.heldout_fraction} in chunks of "
                f"heldout_chunk={self.heldout_chunk} tokens leaves {len(train_starts)} training and "
                f"{len(held_starts)} held-out windows of the {len(train)}-token training text: use a longer "
                "text or a smaller heldout_chunk."
            )
        self.train_set = Windows(train, self.block_size, train_starts)
        self.heldout_set = Windows(train, self.block_size, held_starts)
        last = len(val) - self.block_size - 1
        starts = torch.linspace(0, last, min(self.val_windows, last + 1)).long()
        self.val_set = Windows(val, self.block_size, starts)
        batches = -(-len(starts) // self.batch_size)
        if batches < MIN_VAL_BATCHES:
            rank_zero_warn(
                f"TextDataModule: the validation split ({len(val)} tokens) makes only {batches} batch(es) of "
                f"{self.batch_size} windows: its val loss will be noisy. Use a longer corpus or a larger val_fraction."
            )

    @override
    def train_dataloader(self) -> DataLoader:
        return resumable_shuffled(self.train_set, self.batch_size, self.num_workers, self.trainer)

    @override
    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers)

    def heldout_dataloader(self) -> DataLoader:
        """Every window of the held-out text, in batches of `batch_size` (none at heldout_fraction 0, or in a
        run that ends within its first epoch)."""
        return DataLoader(self.heldout_set, batch_size=self.batch_size, num_workers=self.num_workers)
