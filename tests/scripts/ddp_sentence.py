"""2-process CPU DDP run of the sentence-distillation job on a tiny BERT; each rank writes its summary.

Run as a script: strategy="ddp" relaunches sys.argv in every process, which pytest cannot be.
    python tests/scripts/ddp_sentence.py BERT_DIR CORPUS_FILE OUT_DIR
"""

import json
import os
import sys
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from lightning_hybrid.jobs.configs import config_dir
from lightning_hybrid.jobs.distill_minilm import run


def main(bert_dir: str, corpus: str, out: Path) -> None:
    torch.set_num_threads(1)
    overrides = [
        f"teacher={bert_dir}",
        f"corpus.path={corpus}",
        "corpus.held_out=3",
        "corpus.retrieval=3",
        "corpus.batch_size=2",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.max_steps=4",
        "quant.warmup_steps=2",
        "callbacks.checkpoint=null",
    ]
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("distill_minilm", overrides=overrides)
    summary = run(cfg, out / "run")
    (out / f"rank{os.environ.get('LOCAL_RANK', '0')}.json").write_text(json.dumps(summary))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
