"""LlamaLanguageModel: a transformers Llama trained by Lightning with TernaryQAT (its head kept), whose
checkpoint transformers loads back with the LightningModule's own logits."""

import lightning.pytorch as pl
import pytest
import torch

from lightning_hybrid import TernaryQAT
from lightning_hybrid.data import TextDataModule
from lightning_hybrid.export import save_transformers

transformers = pytest.importorskip("transformers")
from lightning_hybrid.models import LlamaLanguageModel  # noqa: E402  (after the skip: it needs transformers)

SIZES = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2}


@pytest.fixture(scope="module")
def fitted():
    return _fit()


def _fit(steps=30):
    torch.manual_seed(0)
    data = TextDataModule(max_bytes=50_000, block_size=16, batch_size=8)
    model = LlamaLanguageModel(
        vocab_size=data.vocab_size, block_size=16, num_key_value_heads=1, warmup_steps=2, decay_steps=steps, **SIZES
    )
    qat = TernaryQAT()
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=steps,
        callbacks=[qat],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(model, data)
    return model, qat, data


def test_ternary_qat_trains_the_llama_and_keeps_its_head(fitted):
    model, qat, data = fitted
    assert list(qat.report.skipped) == ["model.lm_head"]
    assert len(qat.report.converted) == 7  # q, k, v, o, gate, up, down
    batch = next(iter(data.train_dataloader()))
    first = LlamaLanguageModel(vocab_size=data.vocab_size, block_size=16, num_key_value_heads=1, **SIZES)
    with torch.no_grad():
        assert model.loss(batch) < first.loss(batch) - 0.5  # it learned (an untrained model: about ln 256)


def test_the_lightning_module_exports_to_transformers_with_its_logits(fitted, tmp_path):
    pytest.importorskip("accelerate")
    model, _, _ = fitted
    ids = torch.randint(0, model.hparams.vocab_size, (2, 16), generator=torch.Generator().manual_seed(3))
    model.eval()
    with torch.no_grad(), torch._dynamo.config.patch(disable=True):
        ours = model(ids)
        save_transformers(model, tmp_path)  # the LightningModule holds one PreTrainedModel
        loaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
        torch.testing.assert_close(loaded(input_ids=ids).logits, ours, rtol=1e-5, atol=1e-5)


def test_without_transformers_the_model_says_which_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_transformers(name, *args, **kwargs):
        if name == "transformers":
            raise ImportError("No module named 'transformers'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_transformers)
    with pytest.raises(ImportError, match=r"pip install 'lightning_hybrid\[export\]'"):
        LlamaLanguageModel()
