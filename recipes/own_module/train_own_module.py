"""Ternary QAT for your own LightningModule: add one callback, then export at 2 bits a weight.

python recipes/own_module/train_own_module.py [--out outputs]
"""

import argparse
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lightning_hybrid import TernaryQAT, load_packed, save_packed


class MyModel(pl.LightningModule):  # an ordinary module: nothing here knows about quantization
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(32, 128), nn.GELU(), nn.Linear(128, 128), nn.GELU())
        self.head = nn.Linear(128, 4)  # "head" stays full precision under the default rule

    def forward(self, x):
        return self.head(self.body(x))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=3e-3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("outputs"), help="directory of the packed file")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(0)
    x = torch.randn(4096, 32)
    y = (x[:, :4] + 0.5 * x[:, 4:8]).argmax(dim=1)
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)

    model = MyModel()
    trainer = pl.Trainer(
        max_epochs=3,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        callbacks=[TernaryQAT(bits=1.58, warmup_steps=50)],
    )
    trainer.fit(model, loader)

    path = out / "my_model.packed.safetensors"
    report = save_packed(model, path)
    print(report.table())
    restored = load_packed(MyModel(), path).eval()
    model.eval()
    with torch.no_grad():
        same = torch.equal(restored(x[:256]), model(x[:256]))
        accuracy = (restored(x).argmax(1) == y).float().mean().item()
    print(f"packed model reproduces the QAT model exactly: {same}; train accuracy {accuracy:.3f}")


if __name__ == "__main__":
    main()
