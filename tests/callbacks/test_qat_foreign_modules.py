"""TernaryQAT on LightningModules written by others: Lightning's own demo models."""

import lightning.pytorch as pl
import torch
from lightning.pytorch.demos import LightningTransformer
from lightning.pytorch.demos.boring_classes import BoringModel
from torch.utils.data import DataLoader, Dataset

from lightning_hybrid import TernaryQAT, load_packed, save_packed


class RandomTokens(Dataset):
    def __len__(self) -> int:
        return 32

    def __getitem__(self, i: int):
        x = torch.randint(0, 50, (17,), generator=torch.Generator().manual_seed(i))
        return x[:-1], x[1:]


class OfflineTransformer(LightningTransformer):
    def prepare_data(self) -> None:  # the demo downloads WikiText-2 here; these tests bring their own tokens
        pass


def _fit(model, qat, loader=None):
    trainer = pl.Trainer(
        max_steps=3,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[qat],
    )
    trainer.fit(model, loader)


def test_lightning_demo_transformer(tmp_path):
    torch.manual_seed(0)
    model, qat = OfflineTransformer(vocab_size=50), TernaryQAT()
    _fit(model, qat, DataLoader(RandomTokens(), batch_size=8))
    # 2 encoder + 2 decoder layers with linear1/linear2 are converted; the 6 attention out_proj are
    # skipped (nn.MultiheadAttention uses them functionally) and so is the `decoder` vocabulary head.
    assert str(qat.report) == "converted 8 of 15 linear layers, skipped 7"
    assert "output head" in qat.report.skipped["model.decoder"]
    save_packed(model, tmp_path / "t.safetensors")
    restored = load_packed(OfflineTransformer(vocab_size=50), tmp_path / "t.safetensors").eval()
    x, y = next(iter(DataLoader(RandomTokens(), batch_size=4)))
    with torch.no_grad():
        torch.testing.assert_close(restored(x, y), model.eval()(x, y), rtol=0, atol=0)


def test_lightning_boring_model(tmp_path):
    model, qat = BoringModel(), TernaryQAT(bits=1)
    _fit(model, qat)
    assert str(qat.report) == "converted 1 of 1 linear layers, skipped 0"
    save_packed(model, tmp_path / "b.safetensors")
    x = torch.randn(4, 32)
    torch.testing.assert_close(
        load_packed(BoringModel(), tmp_path / "b.safetensors").eval()(x), model.eval()(x), rtol=0, atol=0
    )
