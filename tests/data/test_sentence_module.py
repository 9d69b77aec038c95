"""SentenceDataModule's parts (data/sentence_module.py): padding, tokenizing, batch-size checks."""

import torch

from lightning_hybrid.data.sentence_module import PadCollate


def test_pad_collate_pads_to_the_longest_row_and_masks_the_padding():
    batch = PadCollate(pad_id=0)([[5, 6, 7], [8]])
    torch.testing.assert_close(batch["input_ids"], torch.tensor([[5, 6, 7], [8, 0, 0]]), rtol=0, atol=0)
    torch.testing.assert_close(batch["attention_mask"], torch.tensor([[1, 1, 1], [1, 0, 0]]), rtol=0, atol=0)
