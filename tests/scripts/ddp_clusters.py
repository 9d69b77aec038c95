"""2-process CPU DDP fit on a ClusterDataModule with the Trainer's defaults (use_distributed_sampler
left True); each rank saves the batches it trained on and its cluster labels. (NestedClassifier has an
unused embedding, hence find_unused_parameters.)

Run as a script: strategy="ddp" relaunches sys.argv in every process, which pytest cannot be.
    python tests/scripts/ddp_clusters.py OUT_DIR POLICY
"""

import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch.utils.data import TensorDataset

from lightning_hybrid import ClusterDataModule

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers.models import NestedClassifier  # noqa: E402


class Seen(pl.Callback):
    def __init__(self):
        self.inputs, self.clusters = [], []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.inputs.append(batch[0].clone())
        self.clusters.append(batch.cluster.clone())


def main(out: Path, policy: str) -> None:
    torch.set_num_threads(1)
    pl.seed_everything(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 16, generator=g)[torch.randint(4, (200,), generator=g)] * 8 + torch.randn(200, 16, generator=g)
    data = ClusterDataModule(
        TensorDataset(x, x[:, :3].argmax(dim=1)), num_clusters=4, batch_size=10, policy=policy, cache_dir=out / "cache"
    )
    seen = Seen()
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=2,
        strategy="ddp_find_unused_parameters_true",
        max_epochs=2,
        limit_val_batches=0,
        callbacks=[seen],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(NestedClassifier(d=16), data)
    torch.save(
        {
            "inputs": torch.stack(seen.inputs),
            "clusters": torch.stack(seen.clusters),
            "labels": data.clustering.labels,
            "x": x,
        },
        out / f"rank{trainer.global_rank}.pt",
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2])
