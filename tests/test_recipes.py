import re
import subprocess
import sys
from pathlib import Path

import pytest

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


@pytest.mark.slow
def test_own_module_recipe_runs_and_round_trips_exactly(tmp_path):
    script = RECIPES / "own_module" / "train_own_module.py"
    cmd = [sys.executable, str(script), "--out", "exports"]
    result = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "packed model reproduces the QAT model exactly: True" in result.stdout
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["my_model.packed.safetensors"]
    assert (tmp_path / "exports" / "my_model.packed.safetensors").exists()  # where --out said, nothing else


def test_every_recipe_documents_its_command_runtime_and_output():
    for recipe in (p for p in RECIPES.iterdir() if p.is_dir()):
        readme = (recipe / "README.md").read_text()
        assert "Runtime" in readme and "```" in readme and "python " in readme, recipe.name
        for experiment in re.findall(r"experiment=(\w+)", readme):  # every config a recipe names exists
            assert (RECIPES.parent / "conf" / "experiment" / f"{experiment}.yaml").is_file(), (recipe.name, experiment)


@pytest.mark.slow
def test_hf_llama_recipe_generates_from_its_transformers_and_gguf_exports(tmp_path):
    import importlib.util

    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    pytest.importorskip("gguf")
    run = tmp_path / "run"
    sizes = ["model.hidden_size=256", "model.intermediate_size=256", "model.num_hidden_layers=1"]
    train = [sys.executable, "-m", "lightning_hybrid.train", "model=llama", *sizes, "trainer.max_steps=5"]
    train += ["data.max_bytes=100000", "data.val_windows=48", "callbacks.progress_bar=null", f"hydra.run.dir={run}"]
    train += ["export_formats=[transformers,gguf]"]
    result = subprocess.run(train, cwd=RECIPES.parent, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    exports = ["transformers"] + (["model.gguf"] if importlib.util.find_spec("llama_cpp") else [])
    for export in exports:
        cmd = [sys.executable, str(RECIPES / "hf_llama" / "generate.py"), str(run / export), "--tokens", "12"]
        result = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        assert result.stdout.startswith("def ") and len(result.stdout.rstrip("\n").encode()) >= 4 + 1, export
