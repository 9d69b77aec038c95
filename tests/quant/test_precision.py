"""2/4/8-bit weights, their packing and export, the PrecisionAllocator and TernaryQAT's per-layer plans.

Oracles: the quantizer's definition (per-row absmax, written out with loops over rows), exact round
trips of packed codes, the QAT model's own outputs (bit-exact packed inference), brute-force search
over assignments, and an uninterrupted run for resume."""

import itertools

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from lightning_hybrid import (
    ClusteredTextDataModule,
    PrecisionAllocator,
    PrecisionPlan,
    TernaryQAT,
    load_packed,
    save_packed,
)
from lightning_hybrid.models import GPT, GPTConfig, LanguageModel
from lightning_hybrid.quant import bit_linears, convert
from lightning_hybrid.quant import reference as ref
from lightning_hybrid.quant.precision import assign_bits, group_by_sensitivity

SHAPE = (6, 42)


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_integer_codes_are_per_row_symmetric_absmax(bits):
    w = torch.randn(SHAPE, generator=torch.Generator().manual_seed(bits))
    q = 2 ** (bits - 1) - 1
    codes, scale = ref.weight_codes(w, bits)
    for i in range(SHAPE[0]):  # oracle: the definition, one row at a time
        s = w[i].abs().max() / q
        assert scale[i, 0] == pytest.approx(float(s), rel=1e-6)
        assert torch.equal(codes[i], torch.clamp(torch.round(w[i] / s), -q, q).to(torch.int8))
    assert int(codes.abs().max()) == q  # the row maximum always lands on the top code
    torch.testing.assert_close(ref.quantize_weight(w, bits), codes.float() * scale, rtol=0, atol=0)


def test_more_bits_less_error():
    w = torch.randn(64, 128, generator=torch.Generator().manual_seed(0))
    errors = [float(ref.relative_error(w, b)) for b in (2, 4, 8)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.01


def _gpt(seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=37, block_size=16, n_layer=2, n_head=2, n_embd=24))


PLAN = {
    "blocks.0.attn.qkv": 1,
    "blocks.0.attn.proj": 2,
    "blocks.0.mlp.fc": 4,
    "blocks.1.mlp.proj": 8,
}  # the other four layers get the default, 1.58


def test_mixed_plan_exports_each_layer_at_its_width_and_reloads_bit_exact(monkeypatch, tmp_path):
    model = _gpt()
    convert(model, bits=1.58, plan=PLAN)
    model.eval()
    assert {n: m.bits for n, m in bit_linears(model).items() if n in PLAN} == PLAN
    idx = torch.randint(0, 37, (3, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(idx)
    report = save_packed(model, tmp_path / "m.safetensors", layout="base3")
    layouts = {la.name: (la.layout, la.bits_per_weight) for la in report.layers}
    assert layouts["blocks.0.attn.qkv"] == ("1bit", 1.0)
    assert layouts["blocks.0.attn.proj"] == ("2bit", 2.0)
    assert layouts["blocks.0.mlp.fc"] == ("4bit", 4.0)
    assert layouts["blocks.1.mlp.proj"] == ("int8", 8.0)
    assert layouts["blocks.1.attn.qkv"][0] == "base3"
    # per-row fp32 scales for the integer layers: 96 rows of 4 bytes
    assert next(la for la in report.layers if la.name == "blocks.0.mlp.fc").scale_bytes == 4 * 96
    fresh = load_packed(_gpt(seed=9).eval(), tmp_path / "m.safetensors")
    with torch.no_grad():  # oracle: the QAT model, on the default CPU path (int8 matmuls) and the reference
        torch.testing.assert_close(fresh(idx), expected, rtol=0, atol=0)
        monkeypatch.setenv("LIGHTNING_HYBRID_KERNELS", "torch")
        torch.testing.assert_close(fresh(idx), expected, rtol=0, atol=0)


def test_plan_naming_an_unconverted_layer_is_an_error():
    with pytest.raises(ValueError, match=r"`plan` names layers that are not converted: \['lm_head'\]"):
        convert(_gpt(), plan={"lm_head": 4})


def test_grouping_orders_groups_by_sensitivity():
    groups = group_by_sensitivity([1e-4, 2e-4, 0.05, 0.06, 1.0, 3.0], num_groups=3)
    assert groups == [0, 0, 1, 1, 2, 2]


def test_assignment_is_the_cheapest_monotone_one_within_budget():
    groups, params = [0, 0, 1, 2], [100, 100, 50, 50]
    by_bits = [
        {1: 0.1, 1.58: 0.05, 2: 0.04, 4: 0.01, 8: 0.0},
        {1: 0.1, 1.58: 0.05, 2: 0.04, 4: 0.01, 8: 0.0},
        {1: 0.5, 1.58: 0.3, 2: 0.2, 4: 0.05, 8: 0.0},
        {1: 2.0, 1.58: 1.0, 2: 0.8, 4: 0.1, 8: 0.0},
    ]
    choices = [1, 1.58, 2, 4, 8]
    got = assign_bits(groups, params, by_bits, choices, budget=2.0)
    best = None  # oracle: brute force over every monotone assignment
    for combo in itertools.product(choices, repeat=3):
        if list(combo) != sorted(combo):
            continue
        width = sum(p * combo[g] for p, g in zip(params, groups)) / sum(params)
        cost = sum(e[combo[g]] for e, g in zip(by_bits, groups))
        if width <= 2.0 + 1e-9 and (best is None or cost < best[0]):
            best = (cost, [combo[g] for g in groups])
    assert got == best[1]
    assert sum(p * b for p, b in zip(params, got)) / sum(params) <= 2.0


def test_allocator_arguments_are_checked():
    with pytest.raises(ValueError, match=r"`average_bits`=0.5 is below the narrowest choice 1"):
        PrecisionAllocator(average_bits=0.5)
    with pytest.raises(ValueError, match=r"`choices` must be one of \(1, 1.58, 2, 4, 8\), got 3"):
        PrecisionAllocator(choices=[1.58, 3])
    with pytest.raises(ValueError, match=r"`plan` must be a \{layer: bits\} mapping"):
        TernaryQAT(plan=42)
    with pytest.raises(ValueError, match=r"`plan\['a'\]` must be one of"):
        TernaryQAT(plan={"a": 3})


def _fit(tmp_path, max_steps, plan, callbacks=(), ckpt_path=None):
    torch.manual_seed(0)
    # ClusterDataModule's loader resumes mid-epoch exactly (TextDataModule's shuffled one replays the epoch)
    data = ClusteredTextDataModule(
        max_bytes=40_000,
        block_size=16,
        batch_size=4,
        val_windows=16,
        num_clusters=2,
        policy="random",
        cache_dir=tmp_path.parent / "cache",
    )
    model = LanguageModel(vocab_size=data.vocab_size, block_size=16, n_layer=2, n_head=2, n_embd=32, warmup_steps=2)
    qat = TernaryQAT(plan=plan)
    trainer = pl.Trainer(
        max_steps=max_steps,
        callbacks=[qat, *callbacks],
        logger=pl.loggers.CSVLogger(tmp_path, name="", version=""),
        limit_val_batches=2,
        val_check_interval=4,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        enable_checkpointing=bool(callbacks),
    )
    trainer.fit(model, data, ckpt_path=ckpt_path)
    return qat, model


def test_allocator_plans_at_fit_start_within_budget_and_saves_the_table(tmp_path):
    qat, model = _fit(tmp_path, 2, PrecisionAllocator(average_bits=2.0, num_groups=3))
    plan = PrecisionPlan.load(tmp_path / "precision_plan.json")
    assert (tmp_path / "precision_plan.json.md").read_text().startswith("| layer | params | sensitivity")
    assert plan.bits == qat.plan_bits == {n: m.bits for n, m in bit_linears(model).items()}
    assert len(plan.layers) == 8 and plan.average_bits <= 2.0 + 1e-9
    assert qat.average_bits() == pytest.approx(plan.average_bits)
    assert len({row.group for row in plan.layers}) <= 3


def test_resume_keeps_the_plan_the_checkpoint_was_trained_with(tmp_path):
    plan = {"model.blocks.0.attn.qkv": 4, "model.blocks.1.mlp.fc": 2}
    _, whole = _fit(tmp_path / "a", 8, plan)
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=4, save_top_k=-1, filename="{step}")
    _fit(tmp_path / "b", 4, plan, [ckpt])
    # resumed with an allocator: the saved plan wins, nothing is measured on fresh weights
    qat, resumed = _fit(
        tmp_path / "c",
        8,
        PrecisionAllocator(average_bits=1.0, choices=[1]),
        ckpt_path=str(tmp_path / "ckpt" / "step=4.ckpt"),
    )
    assert qat.plan_bits == plan and not (tmp_path / "c" / "precision_plan.json").exists()
    assert {n: m.bits for n, m in bit_linears(resumed).items() if n in plan} == plan
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
