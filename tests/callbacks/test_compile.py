"""CompileModel: the LightningModule compiled in place after TernaryQAT's swap; training matches eager (oracle:
the same seed without the callback; tolerance 1e-5 of the largest parameter after 4 AdamW steps, inductor
reorders float sums); its arguments."""

import lightning.pytorch as pl
import pytest
import torch

from helpers.models import NestedClassifier, classification_loader, quiet_trainer
from lightning_hybrid import CompileModel, TernaryQAT
from lightning_hybrid.quant import BitLinear


def _fit(compiled: bool) -> NestedClassifier:
    pl.seed_everything(0)
    model = NestedClassifier()
    callbacks = [TernaryQAT(), *([CompileModel()] if compiled else [])]
    quiet_trainer(4, callbacks=callbacks).fit(model, classification_loader())
    return model


@pytest.mark.slow  # inductor compiles C++ for the forward and backward: ~20 s on 2 cores
def test_the_quantized_model_trains_compiled_as_it_does_eagerly():
    eager, compiled = _fit(False), _fit(True)
    assert compiled._compiled_call_impl is not None and eager._compiled_call_impl is None
    assert isinstance(compiled.backbone[0].layers[0], BitLinear)  # swapped in setup, before compiling
    assert compiled.state_dict().keys() == eager.state_dict().keys()  # compiled in place: the same names
    for (name, a), b in zip(compiled.state_dict().items(), eager.state_dict().values(), strict=True):
        assert torch.allclose(a, b, rtol=0, atol=1e-5 * float(b.abs().max().clamp_min(1))), name


def test_compiles_once_across_fit_and_validate():
    model, callback = NestedClassifier(), CompileModel()
    callback.setup(None, model, "fit")
    first = model._compiled_call_impl
    callback.setup(None, model, "validate")
    assert first is not None and model._compiled_call_impl is first


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="`mode` must be one of 'default', 'reduce-overhead'.*got 'fast'"):
        CompileModel(mode="fast")
    with pytest.raises(ValueError, match="`dynamic` must be one of None, True, False; got 'yes'"):
        CompileModel(dynamic="yes")
