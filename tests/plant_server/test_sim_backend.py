"""SimBackend: each control acts from the moment it arrived (piecewise zero-order hold), one
number per input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hil.dynamics import create_model
from plant_server.backends.sim import SimBackend

MS = 1_000_000
X0 = np.array([0.0, 0.1, -0.05, 0.0, 0.0, 0.0])


def manual(model, state, pieces):
    s = state.copy()
    out = np.empty_like(s)
    for u, dt_ns in pieces:
        model.step(s, u, dt_ns * 1e-9, out)
        s, out = out, s
    return s


# A plant of two inputs (a mass pushed along x and y), as a lab writes one.
TWO_FORCES = """
import numpy as np

class TwoForces:
    state_names = ("x", "y", "x_dot", "y_dot")
    state_units = ("m", "m", "m/s", "m/s")
    input_names = ("fx", "fy")
    input_units = ("N", "N")
    input_limits = (10.0, (-1.0, 4.0))
    equilibrium_input = (0.0, 0.0)

    def derivatives(self, state, u):
        return np.array([state[2], state[3], u[0] - 0.5 * state[2], u[1] - state[3]])
"""


def test_control_arriving_mid_period_switches_the_force_at_arrival() -> None:
    model = create_model("dip")
    b = SimBackend(model, X0, max_step_ns=MS)
    b.start(0)
    assert b.u.tolist() == [0.0]  # nothing applied yet: no input
    b.apply([10.0], 300_000)  # arrives 0.3 ms into the first period
    assert b.u.tolist() == [10.0]  # held from its arrival on
    got = b.advance(MS).copy()
    want = manual(model, X0, [(0.0, 300_000), (10.0, 700_000)])
    np.testing.assert_array_equal(got, want)
    assert b.u.tolist() == [10.0] and b.u.dtype == np.float64


def test_several_arrivals_in_one_period_each_take_effect_in_order() -> None:
    model = create_model("dip")
    b = SimBackend(model, X0, max_step_ns=MS)
    b.start(0)
    b.apply([5.0], 100_000)
    b.apply([-5.0], 600_000)
    got = b.advance(MS).copy()
    want = manual(model, X0, [(0.0, 100_000), (5.0, 500_000), (-5.0, 400_000)])
    np.testing.assert_array_equal(got, want)


def test_force_is_held_across_periods_and_long_gaps_are_split() -> None:
    model = create_model("dip")
    b = SimBackend(model, X0, max_step_ns=MS)
    b.start(0)
    b.apply([3.0], 0)
    got = b.advance(3 * MS + 500_000).copy()  # a skipped stretch: 3.5 periods at once
    want = manual(model, X0, [(3.0, MS), (3.0, MS), (3.0, MS), (3.0, 500_000)])
    np.testing.assert_array_equal(got, want)
    assert b.sim_time_ns == 3 * MS + 500_000


def test_an_arrival_after_the_target_time_applies_from_then_on() -> None:
    model = create_model("dip")
    b = SimBackend(model, X0, max_step_ns=MS)
    b.start(0)
    b.apply([7.0], 2 * MS)  # stamped later than the tick being computed
    np.testing.assert_array_equal(b.advance(MS), manual(model, X0, [(0.0, MS)]))
    assert b.u.tolist() == [7.0]


def _two_forces(tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "two_forces_plant.py").write_text(TWO_FORCES)
    return create_model("two_forces_plant:TwoForces", search_path=[str(tmp_path)])


def test_a_plant_of_two_inputs_gets_both_each_from_its_arrival(tmp_path: Path) -> None:
    model = _two_forces(tmp_path)
    x0 = np.array([0.0, 0.0, 0.5, -0.5])
    b = SimBackend(model, x0, max_step_ns=MS)
    assert b.u.tolist() == [0.0, 0.0]
    b.start(0)
    b.apply([2.0, -1.0], 250_000)
    b.apply([-3.0, 3.5], 600_000)
    got = b.advance(MS).copy()
    want = manual(model, x0, [(np.zeros(2), 250_000), (np.array([2.0, -1.0]), 350_000),
                              (np.array([-3.0, 3.5]), 400_000)])
    np.testing.assert_array_equal(got, want)
    assert b.u.tolist() == [-3.0, 3.5]
    # Held across the next period, both inputs; the y input matters (not just x).
    held = b.advance(2 * MS).copy()
    np.testing.assert_array_equal(held, manual(model, want, [(np.array([-3.0, 3.5]), MS)]))
    assert held[3] != manual(model, want, [(np.array([-3.0, 0.0]), MS)])[3]
    # What `u` returns is the backend's copy: changing it changes nothing.
    b.u[:] = 99.0
    assert b.u.tolist() == [-3.0, 3.5]


def test_initial_state_holds_until_start_and_advance_needs_start() -> None:
    b = SimBackend(create_model("dip"), X0, max_step_ns=MS)
    with pytest.raises(RuntimeError, match="before start"):
        b.advance(MS)
    b.start(5 * MS)
    np.testing.assert_array_equal(b.advance(5 * MS), X0)


def test_initial_state_of_the_wrong_size_names_the_model_and_states() -> None:
    with pytest.raises(ValueError, match=r"initial_state must have 4 entries \['x', 'theta'"):
        SimBackend(create_model("cartpole"), X0, max_step_ns=MS)
    with pytest.raises(ValueError, match="max_step_ns must be > 0"):
        SimBackend(create_model("dip"), X0, max_step_ns=0)


LEAVES_ITS_RAILS = """
import numpy as np
from hil.dynamics import PlantStepError

class Rails:
    state_names = ("x", "x_dot")
    state_units = ("m", "m/s")
    input_name = "force"
    max_force_n = 10.0

    def derivatives(self, state, u):
        if state[0] > 0.002:
            raise PlantStepError(f"the cart left its rails at x = {state[0]:.4f} m")
        return np.array([state[1], u])
"""


def test_a_model_that_cannot_go_on_is_the_backends_fault_and_the_state_stays(
        tmp_path: Path) -> None:
    """PlantStepError from the model's step: the backend stops where it failed and says why
    (the loop then puts the plant safe with that reason)."""
    (tmp_path / "rails_plant.py").write_text(LEAVES_ITS_RAILS)
    model = create_model("rails_plant:Rails", search_path=[str(tmp_path)])
    b = SimBackend(model, np.array([0.0, 1.0]), max_step_ns=MS)
    b.start(0)
    assert b.fault is None
    before = b.advance(2 * MS).copy()  # x = 0.002 at 2 ms: still on its rails
    assert b.fault is None and before[0] == pytest.approx(0.002)
    after = b.advance(10 * MS).copy()
    assert b.fault is not None and b.fault.startswith("the cart left its rails at x = 0.00")
    assert after[0] <= 0.0031  # stopped within the step that failed
    np.testing.assert_array_equal(b.advance(20 * MS), after)  # and stays there
