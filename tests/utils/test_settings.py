"""Settings dataclasses from keyword arguments (utils/settings.py): strictly, or picked from a mapping."""

from dataclasses import dataclass

import pytest

from lightning_hybrid.utils.settings import field_names, pick, strict


@dataclass
class Sizes:
    width: int = 4
    depth: int = 2

    def __post_init__(self):
        if self.width < 1:
            raise ValueError(f"`width` must be a positive integer, got {self.width!r}.")


def test_strict_builds_the_dataclass_and_its_checks_run():
    assert strict(Sizes, {"width": 8}, "Net") == Sizes(8, 2)
    with pytest.raises(ValueError, match="`width` must be a positive integer, got 0"):
        strict(Sizes, {"width": 0}, "Net")


def test_strict_names_an_unknown_argument_and_the_ones_taken():
    with pytest.raises(TypeError, match="Net got unexpected argument.s. heads, size; it takes width, depth."):
        strict(Sizes, {"size": 1, "heads": 2}, "Net")


def test_pick_takes_the_fields_it_knows_over_a_base():
    hparams = {"width": 16, "lr": 1e-3}
    assert pick(Sizes, hparams) == Sizes(16, 2)
    assert pick(Sizes, hparams, base=Sizes(1, 7)) == Sizes(16, 7)
    assert field_names(Sizes) == ("width", "depth")
