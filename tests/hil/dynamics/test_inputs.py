"""The inputs contract: what a plant declares becomes names, units and limits, or a clear error."""

from __future__ import annotations

import numpy as np
import pytest

from hil.dynamics.inputs import MAX_INPUTS, Inputs, InputsError


def test_limits_are_l_or_low_high_per_input_and_round_trip_through_the_description() -> None:
    inputs = Inputs.declared(("left", "right"), ("N", "V"), (40.0, (0.0, 12.0)), where="p")
    assert inputs.low == (-40.0, 0.0) and inputs.high == (40.0, 12.0)
    assert inputs.magnitude == (40.0, 12.0)
    assert Inputs.from_description({"x": 1, **inputs.describe()}) == inputs
    np.testing.assert_array_equal(inputs.clip(np.array([50.0, -1.0])), [40.0, 0.0])


@pytest.mark.parametrize(("names", "units", "limits", "needle"), [
    (("a", "b"), ("N", "N"), (1.0,), "2 input_names ['a', 'b'] but 1 input_limits"),
    (("a",), ("N", "N"), (1.0,), "input_units has 2 entries for 1 inputs"),
    (("a",), ("N",), (-1.0,), "must be > 0"),
    (("a",), ("N",), ((2.0, 1.0),), "low < high"),
    (("a",), ("N",), ((0.0, float("inf")),), "low < high"),
    (("a", "a"), ("N", "N"), (1.0, 1.0), "distinct"),
    ("ab", ("N",), (1.0,), "tuple of strings"),
    (tuple(f"u{i}" for i in range(MAX_INPUTS + 1)), ("N",) * (MAX_INPUTS + 1),
     (1.0,) * (MAX_INPUTS + 1), f"1 to {MAX_INPUTS} inputs"),
])
def test_what_does_not_fit_is_refused_naming_the_problem(names, units, limits, needle) -> None:
    with pytest.raises(InputsError, match="where") as info:
        Inputs.declared(names, units, limits, where="where")
    assert needle in str(info.value)


def test_a_description_without_inputs_names_the_missing_key() -> None:
    with pytest.raises(InputsError, match="'input_names'"):
        Inputs.from_description({"state_names": ["x"]})
