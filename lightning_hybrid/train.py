"""`python -m lightning_hybrid.train` (`lightning-hybrid-train`): the main job, lightning_hybrid/jobs/train.py."""

from lightning_hybrid.jobs.configs import build_callbacks, config_dir
from lightning_hybrid.jobs.train import main, train, with_teacher

__all__ = ["build_callbacks", "config_dir", "main", "train", "with_teacher"]

if __name__ == "__main__":
    main()
