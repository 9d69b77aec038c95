import subprocess
import sys
from pathlib import Path

import pytest

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


@pytest.mark.slow
def test_own_module_recipe_runs_and_round_trips_exactly(tmp_path):
    script = RECIPES / "own_module" / "train_own_module.py"
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "packed model reproduces the QAT model exactly: True" in result.stdout
    assert (tmp_path / "my_model.packed.safetensors").exists()
