"""`python -m lightning_hybrid.bench` (`lightning-hybrid-bench`): the benchmark harness,
lightning_hybrid/jobs/bench.py."""

from lightning_hybrid.jobs.bench import grid, main, run_benchmark, run_one

__all__ = ["grid", "main", "run_benchmark", "run_one"]

if __name__ == "__main__":
    main()
