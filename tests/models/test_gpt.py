"""The reference GPT (models/gpt.py): shapes, causality, the tied head, GPT-2's initialization, its config."""

import math

import pytest
import torch

from lightning_hybrid.models import GPT, GPTConfig

SMALL = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16)


def test_logits_have_one_row_per_position_and_token():
    torch.manual_seed(0)
    logits = GPT(SMALL)(torch.randint(0, 11, (3, 8)))
    assert logits.shape == (3, 8, 11) and torch.isfinite(logits).all()


def test_a_position_never_sees_the_tokens_after_it():
    torch.manual_seed(0)
    model = GPT(SMALL).eval()
    x = torch.randint(0, 11, (1, 8))
    y = x.clone()
    y[0, 5:] = (y[0, 5:] + 1) % 11  # change only the last three tokens
    torch.testing.assert_close(model(x)[0, :5], model(y)[0, :5], rtol=0, atol=0)


def test_the_head_is_the_embedding_and_the_init_is_gpt2s():
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=4))
    assert model.lm_head.weight is model.tok_emb.weight
    # GPT-2: N(0, 0.02) everywhere, residual projections N(0, 0.02 / sqrt(2 n_layer)); within 5% on 16k+ draws
    assert model.blocks[0].mlp.fc.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert model.blocks[0].attn.proj.weight.std().item() == pytest.approx(0.02 / math.sqrt(8), rel=0.05)


def test_a_sequence_longer_than_the_context_is_refused():
    with pytest.raises(ValueError, match="sequence length 9 exceeds block_size 8"):
        GPT(SMALL)(torch.zeros(1, 9, dtype=torch.long))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_layer": 0}, "`n_layer` must be a positive integer, got 0"),
        ({"n_embd": 30, "n_head": 4}, r"`n_embd` \(30\) must be divisible by `n_head` \(4\)"),
        ({"dropout": 1.0}, r"`dropout` must be a finite number in \[0, 1\), got 1.0"),
        ({"vocab_size": 2.5}, "`vocab_size` must be a positive integer, got 2.5"),
    ],
)
def test_bad_sizes_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GPTConfig(**kwargs)
