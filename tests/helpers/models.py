"""Small LightningModules of shapes the library was not written around."""

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class Encoder(nn.Module):
    def __init__(self, d: int = 16) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(d, 2 * d), nn.ReLU(), nn.Linear(2 * d, d))
        self.gate = nn.ModuleDict({"proj": nn.Linear(d, d, bias=False)})

    def forward(self, x):
        return self.layers(x) * torch.sigmoid(self.gate["proj"](x))


class NestedClassifier(pl.LightningModule):
    """Nested modules, a ModuleDict, biases and no biases, a classifier head, an embedding."""

    def __init__(self, d: int = 16, classes: int = 3, lr: float = 1e-2) -> None:
        super().__init__()
        self.lr = lr
        self.embed = nn.Embedding(10, d)
        self.backbone = nn.ModuleList([Encoder(d), Encoder(d)])
        self.classifier = nn.Linear(d, classes)

    def forward(self, x):
        for enc in self.backbone:
            x = x + enc(x)
        return self.classifier(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x), y))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.lr)


def classification_loader(
    n: int = 96, d: int = 16, classes: int = 3, seed: int = 0, batch_size: int = 16
) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = (x[:, :classes].argmax(dim=1)).long()
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=False)


def quiet_trainer(steps: int, **kwargs) -> pl.Trainer:
    """A CPU Trainer for `steps` steps with no logger, checkpoints, progress bar or model summary."""
    kwargs.setdefault("callbacks", [])
    return pl.Trainer(
        max_steps=steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **kwargs,
    )
