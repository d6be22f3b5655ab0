"""The shared validation vocabulary (brainalign._validation): integers refuse booleans, bounds are named."""

from __future__ import annotations

import numpy as np
import pytest

from brainalign._validation import BrainalignError, check_int, check_type


@pytest.mark.parametrize("value", [3, np.int64(3), np.uint8(3)])
def test_check_int_accepts_python_and_numpy_integers(value):
    assert check_int("n", value, 1, 5) == 3 and type(check_int("n", value)) is int


@pytest.mark.parametrize("value, message", [
    (True, "'n' must be an int >= 1, got True."),
    (np.bool_(True), "'n' must be an int >= 1, got "),
    (2.0, "'n' must be an int >= 1, got 2.0."),
    ("2", "'n' must be an int >= 1, got '2'."),
    (0, "'n' must be an int >= 1, got 0."),
])
def test_check_int_refuses_booleans_floats_text_and_out_of_range(value, message):
    with pytest.raises(BrainalignError, match="^" + message.replace("(", r"\(").replace(".", r"\.")):
        check_int("n", value, 1)


def test_check_int_names_both_bounds():
    with pytest.raises(BrainalignError, match=r"'k' must be an int >= 1 and <= 10, got 11\."):
        check_int("k", 11, 1, 10)


def test_check_type_refuses_a_bool_for_an_int_unless_bool_is_asked():
    with pytest.raises(BrainalignError, match="'run' must be an instance of int or integer, got bool"):
        check_type("run", True, (int, np.integer))
    assert check_type("flag", True, (bool, int)) is True
    assert check_type("run", 2, (int, np.integer)) == 2


def test_the_metrics_refuse_a_bool_count():
    """Formerly seven private copies of the integer check; now one, used by every module."""
    from brainalign.metrics.stats import bootstrap_ci

    with pytest.raises(BrainalignError, match="'n_bootstraps' must be an int"):
        bootstrap_ci(np.arange(5.0), n_bootstraps=True)
