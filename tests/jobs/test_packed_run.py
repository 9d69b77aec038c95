"""A finished run's packed model (jobs/packed_run.py): the refusals of directories that are not one, and
the tokenizers."""

import json

import pytest
from omegaconf import OmegaConf

from lightning_hybrid.jobs.packed_run import PACKED, Tokenizer, finished_run, tokenizer_of


def _run_dir(tmp_path, summary=None, packed=True):
    (tmp_path / ".hydra").mkdir(parents=True)
    (tmp_path / ".hydra" / "config.yaml").write_text("data: {tokenizer: byte}\n")
    if summary is not None:
        (tmp_path / "summary.json").write_text(json.dumps(summary))
    if packed:
        (tmp_path / PACKED).write_bytes(b"")
    return tmp_path


def test_only_a_finished_run_with_a_packed_export_is_accepted(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a main-job run directory"):
        finished_run(tmp_path)
    stopped = _run_dir(tmp_path / "stopped", summary={"interrupted": True})
    with pytest.raises(
        ValueError, match=r"has not finished: continue it with python -m lightning_hybrid.train resume="
    ):
        finished_run(stopped)
    with pytest.raises(ValueError, match="has not finished"):
        finished_run(_run_dir(tmp_path / "running"))  # no summary.json yet
    with pytest.raises(FileNotFoundError, match=f"has no {PACKED}: only quantized runs"):
        finished_run(_run_dir(tmp_path / "fp32", summary={"steps": 20}, packed=False))
    path, cfg = finished_run(_run_dir(tmp_path / "done", summary={"steps": 20}))
    assert path == tmp_path / "done" and cfg.data.tokenizer == "byte"


def test_the_tokenizers_round_trip_and_name_unknown_characters(tmp_path):
    byte = Tokenizer("byte")
    assert byte.vocab_size == 256 and byte.decode(byte.encode("déf x")) == "déf x"
    text = tmp_path / "t.txt"
    text.write_text("abcab cab\n" * 50)
    char = tokenizer_of(OmegaConf.create({"tokenizer": "char", "path": str(text), "max_bytes": None}))
    assert char.alphabet == ("\n", " ", "a", "b", "c") and char.decode(char.encode("cab a")) == "cab a"
    with pytest.raises(ValueError, match="`prompt` has characters the run's alphabet lacks: 'dz'"):
        char.encode("zad")
