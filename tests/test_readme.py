"""The README's test command is what CI runs, and its set-up commands are the documented two."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _setup_commands() -> list[str]:
    readme = (REPO / "README.md").read_text()
    block = re.search(r"## Set up\n.*?```bash\n(.*?)```", readme, re.S)
    assert block, "README.md has no '## Set up' section with a bash block"
    return [line for line in block.group(1).splitlines() if line and not line.startswith("#")]


def test_readme_has_exactly_two_setup_commands():
    commands = _setup_commands()
    assert len(commands) == 2
    assert "python -m lightning_hybrid.train" in commands[0] and "pytest" in commands[1]


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text()
    assert _setup_commands()[1] in ci


def test_every_override_in_the_flag_table_composes():
    from hydra import compose, initialize_config_dir

    from lightning_hybrid.jobs.configs import config_dir

    readme = (REPO / "README.md").read_text()
    table = readme.split("## The original command line, as Hydra overrides", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `--\w+[^`]*` \| `([^`]+)`", table, re.M)
    assert len(rows) == 9
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        for overrides in rows:
            compose("train", overrides=overrides.split())
