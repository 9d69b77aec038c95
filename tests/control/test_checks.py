"""lightning_hybrid.control.checks, the former home of the argument checks, still gives the same functions."""

from lightning_hybrid.control import checks as old
from lightning_hybrid.utils import checks


def test_the_old_import_path_gives_the_shared_checks():
    for name in old.__all__:
        assert getattr(old, name) is getattr(checks, name)
