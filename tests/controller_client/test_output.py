"""What a law returns is checked in one place (controller_client/output.py): one number per
input, whatever numeric type it comes as; anything else is the law's error, named."""

from __future__ import annotations

import math

import numpy as np
import pytest

from controller_client.output import LawOutputError, law_output


@pytest.mark.parametrize("value", [
    2.5, 2, np.float32(2.5), np.float64(2.5), np.int64(2), np.array([2.5]), np.array([[2.5]]),
    [2.5], (np.float32(2.5),), np.array(2.5),
], ids=repr)
def test_one_number_in_any_numeric_form_is_the_input_as_a_float(value: object) -> None:
    got = law_output("mylaw", value, 1)
    assert type(got) is float and got == float(np.asarray(value).ravel()[0])


def test_a_non_finite_number_passes_for_the_plant_s_gate_to_refuse() -> None:
    assert math.isnan(law_output("mylaw", math.nan, 1))
    assert law_output("mylaw", np.float32(np.inf), 1) == math.inf


@pytest.mark.parametrize(("value", "message"), [
    (None, "control law mylaw returned None (NoneType), not a real number"),
    ("1.0", "control law mylaw returned '1.0' (str), not a real number"),
    (True, "control law mylaw returned True (bool), not a real number"),
    (1 + 2j, "control law mylaw returned (1+2j) (complex), not a real number"),
    (np.array([1.0, 2.0]), "control law mylaw returned 2 values (shape (2,)) for 1 input"),
    (np.zeros((2, 3)), "control law mylaw returned 6 values (shape (2, 3)) for 1 input"),
    ([], "control law mylaw returned 0 values (shape 0) for 1 input"),
    ([None], "control law mylaw returned element 0 = None (NoneType), not a real number"),
    (np.array(["a"]), "control law mylaw returned element 0 = np.str_('a') (str_)"),
], ids=repr)
def test_anything_else_is_refused_naming_the_law_and_the_value(value: object,
                                                             message: str) -> None:
    with pytest.raises(LawOutputError) as refused:
        law_output("mylaw", value, 1)
    assert message in str(refused.value)


def test_several_inputs_take_one_number_each() -> None:
    assert law_output("mylaw", np.array([1.0, np.float32(2.0)]), 2) == (1.0, 2.0)
    with pytest.raises(LawOutputError, match=r"returned 1\.5 for 2 inputs"):
        law_output("mylaw", 1.5, 2)
