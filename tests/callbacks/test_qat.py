import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from helpers.models import NestedClassifier, classification_loader
from lightning_hybrid import TernaryQAT
from lightning_hybrid.quant import BitLinear, bit_linears


def _trainer(tmp_path, callbacks, max_steps=6, **kw):
    kw.setdefault("logger", False)
    return pl.Trainer(
        accelerator="cpu",
        max_steps=max_steps,
        callbacks=callbacks,
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        num_sanity_val_steps=0,
        **kw,
    )


def test_converts_before_optimizers_and_trains(tmp_path):
    pl.seed_everything(0)
    model = NestedClassifier()
    first = model.backbone[0].layers[0].weight.detach().clone()
    qat = TernaryQAT(bits=1.58)
    _trainer(tmp_path, [qat]).fit(model, classification_loader())
    layer = model.backbone[0].layers[0]
    assert isinstance(layer, BitLinear)
    assert not torch.equal(layer.weight, first)  # the optimizer updated the shared latent weight
    assert str(qat.report) == "converted 6 of 7 linear layers, skipped 1"


def test_quantized_training_reduces_loss(tmp_path):
    # Convergence oracle: a ternary MLP learns an argmax task (loss falls well below log(3) = 1.10).
    pl.seed_everything(0)
    model = NestedClassifier(lr=3e-2)
    loader = classification_loader(n=3200, batch_size=32)  # one epoch of 100 steps: epoch overhead once
    trainer = _trainer(tmp_path, [TernaryQAT()], max_steps=100, limit_val_batches=8)
    trainer.fit(model, loader, loader)
    assert trainer.callback_metrics["val_loss"] < 0.6


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"bits": 3}, r"`bits` must be one of \(1, 1.58, 2, 4, 8\), got 3"),
        ({"warmup_steps": -1}, "`warmup_steps` must be a non-negative integer, got -1"),
        ({"warmup_steps": 2.5}, "`warmup_steps` must be a non-negative integer, got 2.5"),
        ({"act_bits": 1}, r"`act_bits` must be an integer in \[2, 16\] or None"),
        ({"log_every_n_steps": 0}, "`log_every_n_steps` must be a positive integer or None, got 0"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TernaryQAT(**kwargs)


def test_module_with_nothing_to_convert_is_a_clear_error(tmp_path):
    class NoLinear(NestedClassifier):
        def __init__(self):
            super().__init__()
            self.backbone = torch.nn.ModuleList()
            self.classifier = torch.nn.Identity()

    with pytest.raises(ValueError, match="NoLinear has no nn.Linear layer"):
        _trainer(tmp_path, [TernaryQAT()]).fit(NoLinear(), classification_loader())


def test_warmup_lambda_ramps_and_is_logged(tmp_path):
    pl.seed_everything(0)
    seen = []

    class Spy(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, *args):
            seen.append(pl_module.backbone[0].layers[0].quant_lambda)

    qat = TernaryQAT(warmup_steps=4, log_every_n_steps=1)
    logger = CSVLogger(tmp_path, name="csv", version="")
    _trainer(tmp_path, [qat, Spy()], max_steps=6, logger=logger, log_every_n_steps=1).fit(
        NestedClassifier(), classification_loader()
    )
    assert seen == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    text = (tmp_path / "csv" / "metrics.csv").read_text()
    assert "quant/lambda" in text and "quant_error/mean" in text and "quant_error/backbone.0.gate.proj" in text


def test_quantization_error_matches_reference(tmp_path):
    from lightning_hybrid.quant import reference as ref

    qat = TernaryQAT()
    model = NestedClassifier()
    _trainer(tmp_path, [qat], max_steps=1).fit(model, classification_loader())
    errors = qat.quantization_error()
    for name, layer in bit_linears(model).items():
        assert errors[name].item() == pytest.approx(ref.relative_error(layer.weight, 1.58).item(), rel=1e-6)
    assert errors["mean"].item() == pytest.approx(sum(errors[n].item() for n in bit_linears(model)) / 6, rel=1e-6)


def test_lambda_resumes_from_checkpoint_like_an_uninterrupted_run(tmp_path):
    # 5 batches an epoch: the checkpoint at step 5 closes epoch 0, so the resumed run sees the same batches.
    loader = classification_loader(n=80, batch_size=16)

    def run(max_steps, ckpt_path=None, root="a"):
        pl.seed_everything(0)
        model = NestedClassifier()
        qat = TernaryQAT(warmup_steps=8)
        ckpt = ModelCheckpoint(dirpath=tmp_path / root, every_n_train_steps=5, save_top_k=-1)
        trainer = _trainer(tmp_path, [qat, ckpt], max_steps=max_steps)
        trainer.fit(model, loader, ckpt_path=ckpt_path)
        return model, qat, trainer

    full_model, full_qat, _ = run(8)
    _, stopped_qat, _ = run(5, root="b")
    assert stopped_qat.quant_lambda == pytest.approx(4 / 8)  # lambda used by the 5th step (global_step 4)
    ckpt = torch.load(tmp_path / "b" / "epoch=0-step=5.ckpt", weights_only=False)
    assert ckpt["callbacks"]["TernaryQAT"]["quant_lambda"] == pytest.approx(0.5)

    # Restoring the callback alone puts lambda back into the layers before any step runs.
    model = NestedClassifier()
    probe = TernaryQAT(warmup_steps=8)
    probe.setup(None, model, "validate")
    probe.load_state_dict(ckpt["callbacks"]["TernaryQAT"])
    assert all(layer.quant_lambda == 0.5 for layer in bit_linears(model).values())

    resumed_model, resumed_qat, trainer = run(8, ckpt_path=tmp_path / "b" / "epoch=0-step=5.ckpt", root="c")
    assert trainer.global_step == 8
    assert resumed_qat.quant_lambda == full_qat.quant_lambda == pytest.approx(7 / 8)
    for (name, a), b in zip(full_model.state_dict().items(), resumed_model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)  # CPU: identical to uninterrupted


def test_quantization_error_before_setup_is_a_clear_error():
    with pytest.raises(RuntimeError, match="needs the converted model: call it after the Trainer's setup"):
        TernaryQAT().quantization_error()


def test_resume_with_other_bits_is_refused():
    qat = TernaryQAT(bits=1)
    with pytest.raises(ValueError, match=r"trained with TernaryQAT\(bits=1.58\), this callback has bits=1"):
        qat.load_state_dict({"quant_lambda": 1.0, "bits": 1.58, "warmup_steps": 0})


def test_load_state_dict_tolerates_missing_keys():
    qat = TernaryQAT(warmup_steps=3)
    qat.load_state_dict({})
    assert qat.quant_lambda == 0.0


def test_bf16_mixed_precision(tmp_path):
    pl.seed_everything(0)
    model = NestedClassifier()
    trainer = _trainer(tmp_path, [TernaryQAT()], max_steps=6, precision="bf16-mixed", limit_val_batches=2)
    trainer.fit(model, classification_loader(), classification_loader())
    assert torch.isfinite(trainer.callback_metrics["val_loss"])
    assert model.backbone[0].layers[0].weight.dtype == torch.float32  # latent weights stay fp32


def test_binary_bits(tmp_path):
    model = NestedClassifier()
    _trainer(tmp_path, [TernaryQAT(bits=1)], max_steps=2).fit(model, classification_loader())
    assert {m.bits for m in bit_linears(model).values()} == {1}
