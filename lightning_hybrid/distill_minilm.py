"""`python -m lightning_hybrid.distill_minilm` (`lightning-hybrid-distill-minilm`): all-MiniLM-L6-v2 into its
ternary copy, lightning_hybrid/jobs/distill_minilm.py."""

from lightning_hybrid.jobs.distill_minilm import agreement, main, run

__all__ = ["agreement", "main", "run"]

if __name__ == "__main__":
    main()
