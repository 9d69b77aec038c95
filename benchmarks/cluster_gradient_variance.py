"""Mini-batch gradient variance under each batch policy, at fixed parameters, on the char-LM workload.

For the ternary nanoGPT CPU model on tinyshakespeare, at initialisation and after `--train-steps` steps
of AdamW (random batches), draw `--batches` batches of 12 windows under each ClusterDataModule policy
and compute every batch's full gradient. Reported per policy: the total variance
E||g_b - mean g||^2 (the trace of the gradient covariance) and its ratio to `random`'s, with a
bootstrap 95% interval of that ratio, and ||mean g - mean g_random|| / ||mean g_random|| (how far
the policy's expected gradient is from the plain one: `uniform` reweights the clusters).

    python benchmarks/cluster_gradient_variance.py --data ../shared/data/tinyshakespeare.txt \\
        --clusters 8 --out benchmarks/results/clusters/gradient_variance_k8.csv  # and 64
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import lightning.pytorch as pl
import torch

from lightning_hybrid import ClusteredTextDataModule, TernaryQAT
from lightning_hybrid.data.sampler import POLICIES, ClusterBatchSampler
from lightning_hybrid.models import LanguageModel

FIELDS = [
    "num_clusters",
    "params_at",
    "policy",
    "batches",
    "total_variance",
    "ratio_to_random",
    "ratio_low",
    "ratio_high",
    "mean_shift",
]


def gradient_stats(model: LanguageModel, dm: ClusteredTextDataModule, policy: str, count: int, seed: int):
    """(mean gradient, Gram matrix of the centred batch gradients) over `count` batches under `policy`.

    Only these are kept (count x P gradients of 0.8M parameters would take GBs): the total variance
    of any resample follows from the Gram matrix."""
    sampler = ClusterBatchSampler(dm.clustering.labels, dm.batch_size, policy, seed=seed)
    rows = []
    for indices in sampler:
        model.zero_grad(set_to_none=True)
        model._loss(_batch(dm, indices)).backward()
        rows.append(torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.grad is not None]))
        if len(rows) == count:
            break
    g = torch.stack(rows)
    mean = g.double().mean(dim=0)
    centred = (g.double() - mean).float()
    return mean, (centred @ centred.T).double()


def _batch(dm: ClusteredTextDataModule, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    items = [dm.train_set()[i] for i in indices]
    return torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])


def total_variance(gram: torch.Tensor, counts: torch.Tensor | None = None) -> float:
    """E||g - mean g||^2 of the batches (weighted by resample `counts`), from their Gram matrix."""
    c = torch.ones(len(gram), dtype=gram.dtype) if counts is None else counts.to(gram.dtype)
    n = c.sum()
    return float((c * gram.diagonal()).sum() / n - c @ gram @ c / n**2)


def bootstrap_ratio(gram: torch.Tensor, base: torch.Tensor, draws: int = 1000, seed: int = 0) -> tuple[float, float]:
    gen = torch.Generator().manual_seed(seed)
    ratios = []
    for _ in range(draws):
        a = torch.bincount(torch.randint(len(gram), (len(gram),), generator=gen), minlength=len(gram))
        b = torch.bincount(torch.randint(len(base), (len(base),), generator=gen), minlength=len(base))
        if total_variance(base, b) > 0:  # a resample of one repeated batch has none
            ratios.append(total_variance(gram, a) / total_variance(base, b))
    r = torch.tensor(ratios)
    return float(r.quantile(0.025)), float(r.quantile(0.975))


def trained(model: LanguageModel, dm: ClusteredTextDataModule, steps: int) -> None:
    dm.policy = "random"
    trainer = pl.Trainer(
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        gradient_clip_val=1.0,
    )
    trainer.fit(model, dm)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="tinyshakespeare.txt")
    parser.add_argument("--out", type=Path, required=True, help="CSV to write (a Markdown table goes next to it)")
    parser.add_argument("--clusters", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--batches", type=int, default=400)
    parser.add_argument("--train-steps", type=int, default=500)
    parser.add_argument("--lr", type=float, default=1e-2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for k in args.clusters:
        pl.seed_everything(0)
        dm = ClusteredTextDataModule(args.data, tokenizer="char", max_bytes=None, num_clusters=k, policy="random")
        dm.setup("fit")
        model = LanguageModel(vocab_size=dm.vocab_size, lr=args.lr, decay_steps=args.train_steps)
        qat = TernaryQAT()
        qat.setup(None, model, "fit")  # convert only: no Trainer needed to measure gradients
        for params_at in ("init", f"step{args.train_steps}"):
            if params_at != "init":
                trained(model, dm, args.train_steps)
            stats = {p: gradient_stats(model, dm, p, args.batches, seed=1) for p in POLICIES}
            base_mean, base = stats["random"]
            for policy, (mean, gram) in stats.items():
                low, high = bootstrap_ratio(gram, base)
                shift = float((mean - base_mean).norm() / base_mean.norm())
                row = {
                    "num_clusters": k,
                    "params_at": params_at,
                    "policy": policy,
                    "batches": len(gram),
                    "total_variance": round(total_variance(gram), 5),
                    "ratio_to_random": round(total_variance(gram) / total_variance(base), 3),
                    "ratio_low": round(low, 3),
                    "ratio_high": round(high, 3),
                    "mean_shift": round(shift, 3),
                }
                rows.append(row)
                print(row, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    table = [
        "| k | parameters | policy | total variance | ratio to random (95% bootstrap) | mean shift |",
        "|---|---|---|---|---|---|",
    ]
    table += [
        f"| {r['num_clusters']} | {r['params_at']} | {r['policy']} | {r['total_variance']} | "
        f"{r['ratio_to_random']} ({r['ratio_low']}-{r['ratio_high']}) | {r['mean_shift']} |"
        for r in rows
    ]
    args.out.with_suffix(".md").write_text("\n".join(table) + "\n")


if __name__ == "__main__":
    main()
