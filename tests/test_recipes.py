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
