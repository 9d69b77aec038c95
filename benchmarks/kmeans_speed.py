"""k-means speed: n x d points, k clusters, on this machine's CPU, lightning_hybrid's torch k-means
against faiss and scikit-learn's MiniBatchKMeans (each where installed), all with the same threads.

Points: a mixture of 1024 Gaussian blobs (unit noise around centres drawn with std 3), fp32. Each
method's time is its own fit plus the labels of all n points (lightning_hybrid and scikit-learn compute
them in the fit; faiss's index search is timed for it), with defaults otherwise: lightning_hybrid 100
mini-batch updates of 4096, faiss 25 Lloyd iterations on a 256-points-a-centre subsample,
scikit-learn batches of 4096 until its early stopping. The mean squared distance of every point to its
nearest returned centre is then computed the same way for all (lightning_hybrid.utils.kmeans.nearest),
outside the timing.

    python benchmarks/kmeans_speed.py --n 1000000 --d 384 --k 256 --threads 2 \\
        --out benchmarks/results/clusters/kmeans_speed.csv
"""

from __future__ import annotations

import argparse
import csv
import platform
import time
from pathlib import Path

import torch

from lightning_hybrid.utils.kmeans import kmeans, nearest


def points(n: int, d: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(1024, d, generator=g) * 3
    x = torch.empty(n, d)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        x[start:stop] = centres[torch.randint(1024, (stop - start,), generator=g)] + torch.randn(
            stop - start, d, generator=g
        )
    return x


def run_torch(x: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    return kmeans(x, k, seed=seed).centroids


def run_faiss(x: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    import faiss

    km = faiss.Kmeans(x.shape[1], k, niter=25, seed=seed)  # faiss's defaults: 256 points a centre
    km.train(x.numpy())
    km.index.search(x.numpy(), 1)  # the labels of all points, as the other two return them
    return torch.from_numpy(km.centroids)


def run_sklearn(x: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    from sklearn.cluster import MiniBatchKMeans

    km = MiniBatchKMeans(n_clusters=k, batch_size=4096, n_init=1, random_state=seed)
    km.fit(x.numpy())
    return torch.from_numpy(km.cluster_centers_).float()


METHODS = {"lightning_hybrid (torch)": run_torch, "faiss": run_faiss, "scikit-learn MiniBatchKMeans": run_sklearn}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--d", type=int, default=384)
    parser.add_argument("--k", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        import faiss

        faiss.omp_set_num_threads(args.threads)
    except ImportError:
        pass
    from threadpoolctl import threadpool_limits

    x = points(args.n, args.d)
    rows = []
    with threadpool_limits(args.threads):
        for name, fn in METHODS.items():
            try:
                start = time.perf_counter()
                centroids = fn(x, args.k, 0)
                seconds = time.perf_counter() - start
            except ImportError as err:
                print(f"{name}: not installed ({err})")
                continue
            _, dists = nearest(x, centroids.float())
            row = {
                "method": name,
                "n": args.n,
                "d": args.d,
                "k": args.k,
                "threads": args.threads,
                "seconds": round(seconds, 1),
                "mean_sq_distance": round(float(dists.mean()), 3),
            }
            rows.append(row)
            print(row, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    info = f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    table = [f"Machine: {info}", "", "| method | seconds | mean squared distance |", "|---|---|---|"]
    table += [f"| {r['method']} | {r['seconds']} | {r['mean_sq_distance']} |" for r in rows]
    args.out.with_suffix(".md").write_text("\n".join(table) + "\n")


if __name__ == "__main__":
    main()
