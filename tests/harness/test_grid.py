import pytest

from lightning_hybrid.harness.grid import (
    check_same_run,
    claim,
    clear_claims,
    expand,
    interleave,
    is_done,
    result_path,
    save_result,
)

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


def test_interleaved_rounds_alternate_the_method_order():
    runs = expand(WORKLOADS, METHODS, ["text"], ["a", "p"], [1e-3], [0, 1, 2], [], {"corpus": "x.txt"})
    order = [(r.seed, r.method) for r in interleave(runs)]
    assert order == [(0, "a"), (0, "p"), (1, "p"), (1, "a"), (2, "a"), (2, "p")]


def test_a_claimed_run_is_not_taken_twice_until_claims_are_cleared(tmp_path):
    (run,) = expand(WORKLOADS, METHODS, ["small"], ["a"], [1e-3], [0], [], {})
    assert claim(tmp_path, run) and not claim(tmp_path, run)
    clear_claims(tmp_path)
    assert claim(tmp_path, run)


def test_a_finished_run_made_with_other_overrides_is_refused(tmp_path):
    (run,) = expand(WORKLOADS, METHODS, ["text"], ["a"], [1e-3], [0], [], {"corpus": "x.txt"})
    save_result(tmp_path, run, {"overrides": list(run.overrides)})
    check_same_run(tmp_path, run)  # the same run: fine
    (moved,) = expand(WORKLOADS, METHODS, ["text"], ["a"], [1e-3], [0], [], {"corpus": "/elsewhere/x.txt"})
    check_same_run(tmp_path, moved)  # the text's path may differ
    (variant,) = expand(WORKLOADS, METHODS, ["text"], ["a"], [1e-3], [0], ["model.bias=false"], {"corpus": "x.txt"})
    with pytest.raises(ValueError, match=r"was run with overrides .* give this invocation its own `runs_dir`"):
        check_same_run(tmp_path, variant)


@pytest.mark.parametrize(
    ("status", "reason", "retry_failed", "done"),
    [
        ("ok", "", False, True),
        ("failed", "final val loss nan", False, True),  # the method's failure: it stands
        ("failed", "final val loss nan", True, False),
        ("failed", "ModuleNotFoundError: No module named 'prodigyopt'", False, False),  # the package is back
        ("failed", "ImportError: DigitsDataModule needs scikit-learn", False, False),
    ],
)
def test_a_failure_for_a_missing_package_is_rerun_by_default(tmp_path, status, reason, retry_failed, done):
    run = expand(WORKLOADS, METHODS, ["small"], ["a"], [1e-3], [0], [], {})[0]
    assert not is_done(result_path(tmp_path, run), retry_failed)
    save_result(tmp_path, run, {"status": status, "reason": reason, "overrides": run.overrides})
    assert is_done(result_path(tmp_path, run), retry_failed) is done
