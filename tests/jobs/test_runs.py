"""Finished main-job runs as starting points and teachers (jobs/runs.py): weights that load, the model a
run's own config describes, and errors that name the setting."""

import pytest
import torch
from omegaconf import OmegaConf
from safetensors.torch import save_model

from lightning_hybrid.jobs.runs import WEIGHTS, load_run_weights, teacher_from_run
from lightning_hybrid.models import LanguageModel

MODEL = {
    "_target_": "lightning_hybrid.models.LanguageModel",
    **{"block_size": 8, "n_layer": 1, "n_head": 2, "n_embd": 8, "init": "torch", "tie_head": False, "bias": True},
}


def _run(tmp_path, **model):
    torch.manual_seed(0)
    trained = LanguageModel(vocab_size=13, **{k: v for k, v in {**MODEL, **model}.items() if k != "_target_"})
    save_model(trained, tmp_path / WEIGHTS)
    (tmp_path / ".hydra").mkdir()
    OmegaConf.save({"model": {**MODEL, **model}}, tmp_path / ".hydra" / "config.yaml")
    return trained


def test_a_run_rebuilds_its_model_with_its_weights(tmp_path):
    trained = _run(tmp_path, n_embd=16)
    teacher = teacher_from_run(tmp_path, vocab_size=13)
    assert teacher.model.cfg.n_embd == 16  # from the run's config, not this job's
    for key, value in trained.state_dict().items():
        torch.testing.assert_close(teacher.state_dict()[key], value, rtol=0, atol=0)


def test_a_run_of_the_earlier_model_rebuilds_as_that_model(tmp_path):
    # its saved config has no init / tie_head / bias: the earlier model had them fixed at gpt2 / True / False
    trained = _run(tmp_path, init="gpt2", tie_head=True, bias=False)
    config = OmegaConf.load(tmp_path / ".hydra" / "config.yaml")
    for key in ("init", "tie_head", "bias"):
        del config.model[key]
    OmegaConf.save(config, tmp_path / ".hydra" / "config.yaml")
    teacher = teacher_from_run(tmp_path, vocab_size=13)
    assert teacher.model.lm_head.weight is teacher.model.tok_emb.weight
    for key, value in trained.state_dict().items():
        torch.testing.assert_close(teacher.state_dict()[key], value, rtol=0, atol=0)


def test_weights_that_do_not_fit_name_the_argument(tmp_path):
    _run(tmp_path, n_embd=16)
    with pytest.raises(ValueError, match="`init_from`=.*: its weights do not fit this model"):
        load_run_weights(
            LanguageModel(vocab_size=13, block_size=8, n_layer=1, n_head=2, n_embd=8), tmp_path, "init_from"
        )


def test_a_directory_that_is_not_a_run_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="`init_from`=.* has no model.safetensors"):
        load_run_weights(LanguageModel(vocab_size=13), tmp_path, "init_from")
    with pytest.raises(FileNotFoundError, match="`distill.teacher_run`=.* has no .hydra/config.yaml"):
        teacher_from_run(tmp_path, vocab_size=13)


def test_a_stopped_run_given_as_init_from_points_to_resume(tmp_path):
    (tmp_path / "csv" / "checkpoints").mkdir(parents=True)
    (tmp_path / "csv" / "checkpoints" / "last.ckpt").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"stopped before its end: continue it with resume="):
        load_run_weights(LanguageModel(vocab_size=13), tmp_path, "init_from")
