"""The layout is a contract: import-linter's contracts hold and match README.md's Layout table, the
library imports hydra nowhere, the tests mirror the package, and the code is formatted and linted."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "lightning_hybrid"
TESTS = REPO / "tests"
# Tests of the whole project rather than of one module.
PROJECT_TESTS = {"test_layout.py", "test_readme.py", "test_recipes.py", "test_benchmark_scripts.py"}


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_the_import_contracts_hold():
    lint_imports = shutil.which("lint-imports") or pytest.fail("lint-imports not found: pip install import-linter")
    result = _run(lint_imports, "--no-cache")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


def _readme_layers() -> list[list[str]]:
    section = REPO.joinpath("README.md").read_text().split("## Layout", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d+) \| ([^|]+) \|", section, flags=re.MULTILINE)
    assert [int(n) for n, _ in rows] == list(range(1, len(rows) + 1))
    return [re.findall(r"`(\w+)`", packages) for _, packages in rows]


def test_the_readme_layout_is_the_layers_contract():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    config = tomllib.loads(REPO.joinpath("pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    contract = [[name.strip().removeprefix("lightning_hybrid.") for name in layer.split("|")] for layer in layers]
    assert contract == _readme_layers()
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    assert {name for layer in contract for name in layer} == packages | modules  # every part has its layer


def test_the_library_loads_without_hydra():
    code = (
        "import sys, lightning_hybrid; print(sorted({m.split('.')[0] for m in sys.modules} & {'hydra', 'omegaconf'}))"
    )
    result = _run(sys.executable, "-c", code)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr


def _expected_test(module: Path) -> Path:
    relative = module.relative_to(PACKAGE)
    return TESTS / relative.parent / f"test_{relative.stem.lstrip('_')}.py"


def test_every_module_has_its_test_module():
    modules = [p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"]
    missing = sorted(str(_expected_test(m).relative_to(REPO)) for m in modules if not _expected_test(m).exists())
    assert not missing, f"modules without their test module: {missing}"


def test_every_test_module_tests_a_module_or_the_project():
    expected = {_expected_test(m) for m in PACKAGE.rglob("*.py") if m.name != "__init__.py"}
    stray = []
    for test in TESTS.rglob("test_*.py"):
        if test.name in PROJECT_TESTS and test.parent == TESTS:
            continue
        base = test.with_name(re.sub(r"_ddp\.py$|_foreign_modules\.py$", ".py", test.name))
        if base not in expected:
            stray.append(str(test.relative_to(REPO)))
    assert not stray, f"test modules that mirror no module: {sorted(stray)}"


@pytest.mark.parametrize("command", [("check", "."), ("format", "--check", ".")])
def test_ruff_passes(command):
    ruff = shutil.which("ruff") or pytest.skip("ruff is not installed (the dev and test extras have it)")
    result = _run(ruff, *command)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_no_formatter_pragmas():
    pragmas = [
        f"{p.relative_to(REPO)}:{i}"
        for p in [
            *PACKAGE.rglob("*.py"),
            *TESTS.rglob("*.py"),
            *REPO.glob("benchmarks/*.py"),
            *REPO.glob("recipes/*/*.py"),
        ]
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if re.search(r"#\s*fmt:\s*(skip|off|on)", line)
    ]
    assert not pragmas, pragmas
