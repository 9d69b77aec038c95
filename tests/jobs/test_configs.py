"""Every config group composes, and its node instantiates into the object it names."""

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from lightning_hybrid import ClusterDataModule, PrecisionAllocator, PrecisionPlan, TernaryQAT
from lightning_hybrid.data import DigitsDataModule, TextDataModule
from lightning_hybrid.jobs.configs import build_callbacks, config_dir
from lightning_hybrid.models import LanguageModel, MLPClassifier
from lightning_hybrid.quant.precision import LayerPlan

CONF = Path(config_dir())
TEXT = str(Path(__file__))  # any text file will do for data.path


def _compose(*overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def _options(group):
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_config_dir_is_the_top_level_conf_in_a_checkout():
    assert (CONF / "train.yaml").is_file()


def test_groups_listed_in_the_defaults_exist():
    assert {"model", "data", "quant", "trainer", "callbacks", "experiment"} <= {
        p.name for p in CONF.iterdir() if p.is_dir()
    }


@pytest.mark.parametrize("option", _options("model"))
def test_model_group(option):
    cfg = _compose(f"model={option}")
    if option == "mlp":  # a classifier: the data gives its input width and classes
        assert isinstance(instantiate(cfg.model, in_features=64, num_classes=10), MLPClassifier)
    elif option == "llama":  # a transformers Llama (the export extra)
        pytest.importorskip("transformers")
        from lightning_hybrid.models import LlamaLanguageModel

        model = instantiate(cfg.model, vocab_size=256)
        assert isinstance(model, LlamaLanguageModel) and model.model.config.max_position_embeddings == 64
    else:
        assert isinstance(instantiate(cfg.model, vocab_size=256), LanguageModel)


@pytest.mark.parametrize("option", _options("data"))
def test_data_group(option):
    if option == "digits":  # no text: scikit-learn's images
        dm = instantiate(_compose("data=digits").data)
        assert isinstance(dm, DigitsDataModule) and dm.model_kwargs() == {"in_features": 64, "num_classes": 10}
        return
    cfg = _compose(f"data={option}", f"data.path={TEXT}")
    dm = instantiate(cfg.data)
    assert isinstance(dm, (TextDataModule, ClusterDataModule)) and dm.vocab_size > 1
    if option.startswith("clustered"):  # the Hydra option the clustering issue names
        assert (dm.num_clusters, dm.policy) == (8, "balanced")


def test_default_data_is_the_stdlib_source():
    cfg = _compose()
    assert cfg.data.path is None and cfg.data.tokenizer == "byte"


@pytest.mark.parametrize("option", _options("quant"))
def test_quant_group(option, tmp_path):
    plan = tmp_path / "plan.json"
    PrecisionPlan([LayerPlan("model.blocks.0.mlp.fc", 16, 0.1, 0, 4)], 2.0).save(plan)
    cfg = _compose(f"quant={option}", *([f"quant.plan={plan}"] if option == "planned" else []))
    callbacks = [c for c in build_callbacks(cfg) if isinstance(c, TernaryQAT)]
    expected = {"ternary": [1.58], "binary": [1], "fp32": [], "mixed": [1.58], "planned": [1.58]}[option]
    assert [c.bits for c in callbacks] == expected
    if option == "mixed":
        assert isinstance(callbacks[0].plan, PrecisionAllocator) and callbacks[0].plan.average_bits == 2.0
    if option == "planned":
        assert callbacks[0].plan_bits == {"model.blocks.0.mlp.fc": 4}


@pytest.mark.parametrize("option", _options("trainer"))
def test_trainer_group(option):
    cfg = _compose(f"trainer={option}")
    if cfg.trainer.accelerator == "gpu" and not torch.cuda.is_available():
        cfg.trainer.accelerator = "cpu"  # the rest of the gpu config must still be valid Trainer arguments
        cfg.trainer.precision = "bf16-mixed"
    trainer = instantiate(cfg.trainer, logger=False)
    assert isinstance(trainer, pl.Trainer) and trainer.max_steps == cfg.trainer.max_steps


@pytest.mark.parametrize("option", _options("progress_bar"))
def test_progress_bar_group(option):
    from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar

    want = {"tqdm": TQDMProgressBar, "rich": RichProgressBar}[option]
    for callbacks in ("default", "none"):
        made = build_callbacks(_compose(f"progress_bar={option}", f"callbacks={callbacks}", "quant=fp32"))
        assert [type(c) for c in made if isinstance(c, (TQDMProgressBar, RichProgressBar))] == [want]
    dropped = build_callbacks(_compose(f"progress_bar={option}", "callbacks.progress_bar=null", "quant=fp32"))
    assert not any(isinstance(c, (TQDMProgressBar, RichProgressBar)) for c in dropped)


def test_a_rich_progress_bar_without_rich_names_the_extra(monkeypatch):
    import importlib.util

    from lightning_hybrid.jobs import train

    cfg = _compose("progress_bar=rich")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "rich" else real(name, *a))
    with pytest.raises(
        ModuleNotFoundError, match=r"progress_bar=rich needs the rich package: .*lightning_hybrid\[rich\]"
    ):
        train.check_progress_bar(cfg)
    train.check_progress_bar(_compose("progress_bar=tqdm"))  # no demand


@pytest.mark.parametrize("option", _options("callbacks"))
def test_callbacks_group(option):
    cfg = _compose(f"callbacks={option}", "quant=fp32")
    callbacks = build_callbacks(cfg)
    assert all(isinstance(c, pl.Callback) for c in callbacks)
    assert len(callbacks) == len([c for c in (cfg.callbacks or {}).values() if c is not None])


@pytest.mark.parametrize("option", _options("experiment"))
def test_experiment_group(option):
    if option == "digits":  # the classifier on scikit-learn's images
        cfg = _compose("experiment=digits")
        data = instantiate(cfg.data)
        assert isinstance(instantiate(cfg.model, **data.model_kwargs()), MLPClassifier)
    else:
        cfg = _compose(f"experiment={option}", f"data.path={TEXT}")
        assert isinstance(instantiate(cfg.model, vocab_size=256), LanguageModel)
        assert isinstance(instantiate(cfg.data), (TextDataModule, ClusterDataModule))
    assert isinstance(instantiate(cfg.trainer, logger=False), pl.Trainer)


def test_nanogpt_experiment_is_the_nanogpt_cpu_configuration():
    cfg = _compose("experiment=nanogpt_cpu", f"data.path={TEXT}")
    m, d, t = cfg.model, cfg.data, cfg.trainer
    assert (m.n_layer, m.n_head, m.n_embd, d.block_size, d.batch_size, t.max_steps) == (4, 4, 128, 64, 12, 2000)
    assert d.tokenizer == "char" and m.decay_steps == 2000


@pytest.mark.parametrize("option", _options("optimizer"))
def test_optimizer_group(option):
    cfg = _compose(f"optimizer={option}")
    model = instantiate(cfg.model, vocab_size=256)
    assert (
        model.hparams.optimizer
        == {
            "adamw_cosine": "adamw",
            "schedulefree_adamw": "schedulefree_adamw",
            "prodigy": "prodigy",
            "mechanic": "mechanic",
        }[option]
    )
    optimizer = model.configure_optimizers()
    optimizer = optimizer["optimizer"] if isinstance(optimizer, dict) else optimizer
    assert isinstance(optimizer, torch.optim.Optimizer)


@pytest.mark.parametrize("option", _options("benchmark"))
def test_benchmark_group_expands_to_runs(option):
    from lightning_hybrid.jobs.bench import grid

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("bench", overrides=[f"benchmark={option}", f"text_paths.shakespeare={TEXT}"])
    runs = grid(cfg)
    assert runs and all(r.overrides for r in runs)
    # quick: 3 swept methods x 2 LRs x 2 seeds + prodigy; full: 5 swept ternary methods + prodigy + fp32 reference
    # suite modes: 3 swept methods x LRs x seeds + prodigy, mechanic and learned_scale x seeds, on every workload
    # (suite: learned_scale_heldout too)
    expected = {
        "quick": 3 * 2 * 2 + 2,
        "full": 5 * 4 * 3 + 3 + 4 * 3,
        "clusters": 4 * 3,
        "precision": 4 * 3,
        "reference": 2 * 5 * 3,
        "suite": 4 * (3 * 5 * 3 + 4 * 3),
        "suite-dev": 4 * (3 * 3 + 3),
        "suite-quick": 3 * (3 * 2 + 3),
        "suite-cost": 4 * 6 * 2,
    }[option]
    assert len(runs) == expected
    if option in ("suite", "suite-dev"):  # suite: each workload's own steps; suite-dev: 1000 for all
        steps = {r.workload: next(o for o in r.overrides if o.startswith("trainer.max_steps=")) for r in runs}
        assert steps["digits_ternary"] == "trainer.max_steps=1000"
        gpt_steps = 2000 if option == "suite" else 1000
        assert steps["shakespeare_binary"] == steps["stdlib_ternary"] == f"trainer.max_steps={gpt_steps}"
    for run in runs[:3]:
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            composed = compose("train", overrides=list(run.overrides))
        assert composed.model.lr == run.lr and composed.seed == run.seed


@pytest.mark.parametrize("option", _options("distill"))
def test_distill_group(option):
    cfg = _compose(f"distill={option}")
    assert cfg.distill.enabled == (option != "none")
    if option != "none":
        from lightning_hybrid.distill import DistillLoss

        settings = {k: cfg.distill[k] for k in cfg.distill if k not in ("enabled", "teacher_run", "hidden_pairs")}
        DistillLoss(**settings)  # every weight and setting is one the loss accepts
        paired = _compose(f"distill={option}", "distill.hidden_pairs={model.blocks.3: model.blocks.3}")
        assert dict(paired.distill.hidden_pairs) == {"model.blocks.3": "model.blocks.3"}  # the documented override


@pytest.mark.parametrize("option", _options("compression"))
def test_compression_group(option):
    from lightning_hybrid import GradientCompression

    cfg = _compose("trainer=ddp", f"compression={option}")
    made = [c for c in build_callbacks(cfg) if isinstance(c, GradientCompression)]
    assert len(made) == (option != "none")
    if made:
        assert made[0].method == {"fp32": "none"}.get(option, option)


def test_experiments_can_set_top_level_keys():
    assert _compose("experiment=ultra_low_bit").export_layout == "base3"
    assert _compose().export_layout == "2bit"


def test_bench_overrides_reach_every_run_last():
    from lightning_hybrid.jobs.bench import grid

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("bench", overrides=["overrides=['model.bias=false','model.init=gpt2']"])
    runs = grid(cfg)
    assert runs and all(r.overrides[-2:] == ("model.bias=false", "model.init=gpt2") for r in runs)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        composed = compose("train", overrides=list(runs[0].overrides))
    assert composed.model.bias is False and composed.model.init == "gpt2"
