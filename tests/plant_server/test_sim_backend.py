"""SimBackend: each control acts from the moment it arrived (piecewise zero-order hold)."""

from __future__ import annotations

import numpy as np
import pytest

from hil.dynamics import create_model
from plant_server.backends.sim import SimBackend

MS = 1_000_000
X0 = np.array([0.0, 0.1, -0.05, 0.0, 0.0, 0.0])


def manual(model, state, pieces):
    s = state.copy()
    out = np.empty_like(s)
    for force, dt_ns in pieces:
        model.step(s, force, dt_ns * 1e-9, out)
        s, out = out, s
    return s


def test_control_arriving_mid_period_switches_the_force_at_arrival() -> None:
    model = create_model("dip")
    b = SimBackend(model, X0, max_step_ns=MS)
    b.start(0)
    b.apply(10.0, 300_000)  # arrives 0.3 ms into the first period
    got = b.advance(MS).copy()
    want = manual(model, X0, [(0.0, 300_000), (10.0, 700_000)])
    np.testing.assert_array_equal(got, want)
    assert b.force_n == 10.0


def test_several_arrivals_in_one_period_each_take_effect_in_order() -> None:
    model = create_model("dip")
    b = SimBackend(model, X0, max_step_ns=MS)
    b.start(0)
    b.apply(5.0, 100_000)
    b.apply(-5.0, 600_000)
    got = b.advance(MS).copy()
    want = manual(model, X0, [(0.0, 100_000), (5.0, 500_000), (-5.0, 400_000)])
    np.testing.assert_array_equal(got, want)


def test_force_is_held_across_periods_and_long_gaps_are_split() -> None:
    model = create_model("dip")
    b = SimBackend(model, X0, max_step_ns=MS)
    b.start(0)
    b.apply(3.0, 0)
    got = b.advance(3 * MS + 500_000).copy()  # a skipped stretch: 3.5 periods at once
    want = manual(model, X0, [(3.0, MS), (3.0, MS), (3.0, MS), (3.0, 500_000)])
    np.testing.assert_array_equal(got, want)
    assert b.sim_time_ns == 3 * MS + 500_000


def test_an_arrival_after_the_target_time_applies_from_then_on() -> None:
    model = create_model("dip")
    b = SimBackend(model, X0, max_step_ns=MS)
    b.start(0)
    b.apply(7.0, 2 * MS)  # stamped later than the tick being computed
    np.testing.assert_array_equal(b.advance(MS), manual(model, X0, [(0.0, MS)]))
    assert b.force_n == 7.0


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
