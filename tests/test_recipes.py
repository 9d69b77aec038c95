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


def test_hf_llama_recipe_generates_from_transformers_and_gguf_exports(tmp_path):
    """generate.py on what the main job's export_formats=[transformers,gguf] write (the same two calls),
    here of an untrained converted Llama: text of the asked length, the same for the same seed."""
    import importlib.util

    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    pytest.importorskip("gguf")
    import torch

    from lightning_hybrid.export import save_gguf, save_transformers
    from lightning_hybrid.models import LlamaLanguageModel
    from lightning_hybrid.quant import convert

    torch.manual_seed(0)
    model = LlamaLanguageModel(
        hidden_size=256, intermediate_size=256, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1
    )
    convert(model)
    save_transformers(model, tmp_path / "transformers")
    save_gguf(model, tmp_path / "model.gguf")
    spec = importlib.util.spec_from_file_location("generate", RECIPES / "hf_llama" / "generate.py")
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    loaders = [(generate.transformers_model, tmp_path / "transformers")]
    if importlib.util.find_spec("llama_cpp"):
        loaders.append((generate.llama_cpp_model, tmp_path / "model.gguf"))
    with torch._dynamo.config.patch(disable=True):
        for load, export in loaders:
            next_logits, context = load(str(export))
            assert context == 64
            texts = [generate.generate(next_logits, context, "def ", 12, 0.8, seed=3) for _ in range(2)]
            assert texts[0] == texts[1] and texts[0].startswith("def ") and len(texts[0]) > len("def "), export
