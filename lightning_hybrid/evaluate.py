"""`python -m lightning_hybrid.evaluate run=<run dir> data.path=<text>`: lightning_hybrid/jobs/evaluate.py."""

from lightning_hybrid.jobs.evaluate import evaluate, main

__all__ = ["evaluate", "main"]

if __name__ == "__main__":
    main()
