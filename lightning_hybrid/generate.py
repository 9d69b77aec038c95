"""`python -m lightning_hybrid.generate run=<run dir> prompt="..."`: lightning_hybrid/jobs/generate.py."""

from lightning_hybrid.jobs.generate import generate, main

__all__ = ["generate", "main"]

if __name__ == "__main__":
    main()
