"""The argument checks every layer uses (utils/checks.py): what passes, and the message that names the
argument and the value for what does not."""

import math

import pytest

from lightning_hybrid.utils import checks


@pytest.mark.parametrize(
    ("call", "result"),
    [
        (lambda: checks.integer("n", 3, 1), 3),
        (lambda: checks.integer("n", 0, 0, 5), 0),
        (lambda: checks.integer("n", None, 1, allowed=(None,)), None),
        (lambda: checks.integer("k", "auto", 1, allowed=("auto",)), "auto"),
        (lambda: checks.number("x", 2, 0, open_low=True), 2.0),
        (lambda: checks.number("x", 1.0, 0, 1), 1.0),
        (lambda: checks.number("x", None, 0, allowed=(None,)), None),
        (lambda: checks.choice("mode", "b", ("a", "b")), "b"),
    ],
)
def test_valid_values_come_back(call, result):
    value = call()
    assert value == result and type(value) is type(result)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: checks.positive_int("batch_size", 0), "`batch_size` must be a positive integer, got 0."),
        (lambda: checks.positive_int("batch_size", True), "`batch_size` must be a positive integer, got True."),
        (lambda: checks.positive_int("batch_size", 2.0), "`batch_size` must be a positive integer, got 2.0."),
        (lambda: checks.non_negative_int("seed", -1), "`seed` must be a non-negative integer, got -1."),
        (lambda: checks.integer("window", 1, 2), "`window` must be an integer >= 2, got 1."),
        (lambda: checks.integer("act_bits", 17, 2, 16), "`act_bits` must be an integer in [2, 16], got 17."),
        (
            lambda: checks.integer("act_bits", 1, 2, 16, allowed=(None,)),
            "`act_bits` must be an integer in [2, 16] or None, got 1.",
        ),
        (
            lambda: checks.integer("num_clusters", "many", 1, allowed=("auto",)),
            "`num_clusters` must be a positive integer or 'auto', got 'many'.",
        ),
        (lambda: checks.positive("lr", 0), "`lr` must be a positive finite number, got 0."),
        (lambda: checks.positive("lr", math.inf), "`lr` must be a positive finite number, got inf."),
        (lambda: checks.positive("lr", "1e-3"), "`lr` must be a positive finite number, got '1e-3'."),
        (lambda: checks.non_negative("weight_decay", -0.1), "`weight_decay` must be a finite number >= 0, got -0.1."),
        (lambda: checks.in_open_unit("decay", 1.0), "`decay` must be a finite number in (0, 1), got 1.0."),
        (lambda: checks.above_one("grow", 1), "`grow` must be a finite number > 1, got 1."),
        (lambda: checks.number("x", math.nan), "`x` must be a finite number, got nan."),
        (lambda: checks.choice("mode", "c", ("a", "b")), "`mode` must be one of 'a', 'b'; got 'c'."),
    ],
)
def test_bad_values_name_the_argument_and_the_value(call, message):
    with pytest.raises(ValueError) as err:
        call()
    assert str(err.value) == message


def test_an_allowed_value_is_not_confused_with_an_equal_number():
    with pytest.raises(ValueError, match="got False"):  # False == 0, but it is not the allowed 0
        checks.integer("n", False, 1, allowed=(0,))
