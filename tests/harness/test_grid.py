import pytest

from lightning_hybrid.harness.grid import expand

WORKLOADS = {
    "text": {"overrides": ["data.path={corpus}"]},
    "small": {"overrides": ["experiment=smoke"], "methods": ["a"]},
}
METHODS = {"a": {"overrides": ["optimizer=adamw_cosine"]}, "p": {"overrides": ["optimizer=prodigy"], "fixed_lr": 1.0}}


def test_grid_sweeps_lrs_and_seeds_but_not_fixed_lr_methods():
    runs = expand(
        WORKLOADS, METHODS, ["text"], ["a", "p"], [1e-3, 1e-2], [0, 1, 2], ["trainer.max_steps=5"], {"corpus": "x.txt"}
    )
    assert len(runs) == 2 * 3 + 3
    assert {r.lr for r in runs if r.method == "p"} == {1.0}
    first = runs[0]
    assert first.key == "text/a/lr0.001/seed0"
    assert first.overrides == (
        "data.path=x.txt",
        "optimizer=adamw_cosine",
        "model.lr=0.001",
        "seed=0",
        "trainer.max_steps=5",
    )


def test_workload_can_restrict_methods():
    runs = expand(WORKLOADS, METHODS, ["small"], ["a", "p"], [1e-3], [0], [], {})
    assert [r.method for r in runs] == ["a"]


def test_missing_text_path_names_the_setting():
    with pytest.raises(ValueError, match=r"workload 'text' needs `text_paths.corpus` \(a path to the text\), got None"):
        expand(WORKLOADS, METHODS, ["text"], ["a"], [1e-3], [0], [], {"corpus": None})
    with pytest.raises(ValueError, match="uses {corpus}, which text_paths does not define"):
        expand(WORKLOADS, METHODS, ["text"], ["a"], [1e-3], [0], [], {})


def test_unknown_names_are_errors():
    with pytest.raises(ValueError, match=r"unknown workload\(s\) \['nope'\]"):
        expand(WORKLOADS, METHODS, ["nope"], ["a"], [1e-3], [0], [], {})
    with pytest.raises(ValueError, match=r"unknown method\(s\) \['sgd'\]"):
        expand(WORKLOADS, METHODS, ["small"], ["sgd"], [1e-3], [0], [], {})
