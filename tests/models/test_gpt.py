"""The reference GPT (models/gpt.py): shapes, causality, its initializations and head, its config."""

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


def test_the_default_init_is_torchs_with_a_separate_head_and_biases():
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=4))
    assert model.lm_head.weight is not model.tok_emb.weight
    # PyTorch's: Linear U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (std 1/sqrt(3 fan_in)), Embedding N(0, 1);
    # within 5% on 16k+ draws
    assert model.blocks[0].mlp.fc.weight.std().item() == pytest.approx(1 / math.sqrt(3 * 128), rel=0.05)
    assert model.blocks[0].mlp.proj.weight.std().item() == pytest.approx(1 / math.sqrt(3 * 512), rel=0.05)
    assert model.tok_emb.weight.std().item() == pytest.approx(1.0, rel=0.05)
    layers = [
        m for n, m in model.named_modules() if isinstance(m, (torch.nn.Linear, torch.nn.LayerNorm)) and n != "lm_head"
    ]
    assert all(m.bias is not None for m in layers) and model.lm_head.bias is None


def test_gpt2_init_and_tied_head_are_the_earlier_model():
    torch.manual_seed(0)
    model = GPT(GPTConfig(n_layer=4, init="gpt2", tie_head=True, bias=False))
    assert model.lm_head.weight is model.tok_emb.weight
    # GPT-2: N(0, 0.02) everywhere, residual projections N(0, 0.02 / sqrt(2 n_layer)); within 5% on 16k+ draws
    assert model.blocks[0].mlp.fc.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert model.blocks[0].attn.proj.weight.std().item() == pytest.approx(0.02 / math.sqrt(8), rel=0.05)
    assert all(m.bias is None for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.LayerNorm)))
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
        ({"init": "xavier"}, "`init` must be one of 'torch', 'gpt2'; got 'xavier'"),
        ({"tie_head": "yes"}, "`tie_head` must be True or False, got 'yes'"),
    ],
)
def test_bad_sizes_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GPTConfig(**kwargs)
