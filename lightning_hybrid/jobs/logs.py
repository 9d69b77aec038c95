"""The run log: Hydra writes `<run dir>/train.log` from Python's root logger, but Lightning's loggers do not
propagate to it; this sends what the run prints (and its config, its warnings) there too."""

from __future__ import annotations

import logging

from omegaconf import DictConfig, OmegaConf

# Loggers with handlers of their own that stop at themselves (Lightning prints through them).
NON_PROPAGATING = ("lightning.pytorch", "lightning.fabric")


def log_run_to_file(cfg: DictConfig) -> None:
    """Attach the job's log file to Lightning's loggers, capture warnings, and write the config there."""
    files = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    if not files:  # not under Hydra's job logging (hydra/job_logging=disabled, or called as a library)
        return
    for name in NON_PROPAGATING:
        logger = logging.getLogger(name)
        for handler in files:
            if handler not in logger.handlers:
                logger.addHandler(handler)
    logging.captureWarnings(True)  # warnings reach the root logger: the console and the file
    config = logging.getLogger("lightning_hybrid.config")  # the file only: the config is long
    config.propagate, config.handlers = False, list(files)
    config.setLevel(logging.INFO)
    config.info("config:\n%s", OmegaConf.to_yaml(cfg))
