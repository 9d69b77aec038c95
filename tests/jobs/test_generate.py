"""Text from a finished run's packed model (jobs/generate.py): the sampling rule, then a smoke run's text,
deterministic for a seed, of the asked length, through PackedBitLinear."""

import pytest
import torch

from helpers.runs import command, smoke_run
from lightning_hybrid.jobs.generate import pick, sample
from lightning_hybrid.jobs.packed_run import packed_model
from lightning_hybrid.quant import PackedBitLinear


def test_temperature_zero_is_greedy_and_top_k_keeps_only_the_k_largest():
    logits, g = torch.tensor([[0.0, 3.0, 1.0, 2.0]]), torch.Generator().manual_seed(0)
    assert pick(logits, 0.0, None, g).item() == 1
    draws = {pick(logits, 1.0, 2, g).item() for _ in range(200)}
    assert draws == {1, 3}  # the two largest, each drawn at least once in 200 (p = 0.73 and 0.27)
    assert pick(logits, 1.0, 1, g).item() == 1


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return smoke_run(tmp_path_factory.mktemp("gen") / "run")


@pytest.mark.slow  # a 20-step smoke run
def test_a_runs_packed_model_writes_the_asked_tokens_the_same_for_a_seed(run):
    model, cfg, tokenizer = packed_model(run)
    assert sum(isinstance(m, PackedBitLinear) for m in model.modules()) == 4
    prompt = tokenizer.encode("def ")
    first = sample(model, prompt, 100, int(cfg.data.block_size), 0.8, 50, seed=3)  # past the 64-token context
    assert len(first) == 100 and all(0 <= t < 256 for t in first)
    assert sample(model, prompt, 100, int(cfg.data.block_size), 0.8, 50, seed=3) == first
    assert sample(model, prompt, 100, int(cfg.data.block_size), 0.8, 50, seed=4) != first


@pytest.mark.slow
def test_the_command_prints_the_prompt_and_its_continuation(run):
    args = [f"run={run}", "prompt='def '", "max_new_tokens=30", "seed=7", "temperature=0"]
    first, again = command("generate", *args), command("generate", *args)
    assert first.returncode == 0, first.stderr[-2000:]
    assert first.stdout.startswith("def ") and first.stdout == again.stdout
    bad = command("generate", f"run={run}", "temperature=-1")
    assert bad.returncode == 2 and "`temperature`" in bad.stderr
