"""Safety gates: state limits trip with {time, gate, value, limit}; inputs are saturated and
slew-limited per input, implausible ones refused; the safe output (each input off, or a cart
brake)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hil.config import load_config
from hil.dynamics.inputs import Inputs
from plant_server.safety import MAX_EVENTS, SafetyGates, SafetyLimits, limits_from_config

NAMES = ("x", "theta1", "theta2", "x_dot", "theta1_dot", "theta2_dot")
FORCE = Inputs.single("force", "N", 150.0)
# Two inputs of different ranges: a thrust that cannot go negative, a voltage around zero.
TWO = Inputs(("thrust", "volts"), ("N", "V"), (0.0, -2.0), (40.0, 2.0))


def gates(inputs: Inputs = FORCE, **kwargs: object) -> SafetyGates:
    base: dict[str, object] = {"sanity_factor": 10.0, "track_limit_m": 1.0,
                               "angle_limit_rad": 0.5}
    return SafetyGates(SafetyLimits(inputs, **{**base, **kwargs}), NAMES)  # type: ignore[arg-type]


def state(*values: float) -> np.ndarray:
    return np.array(values + (0.0,) * (6 - len(values)))


def test_a_state_within_limits_trips_nothing() -> None:
    g = gates()
    assert g.check_state(state(0.99, 0.49, -0.49), 1.0, 10) is None
    assert g.trips == 0 and g.events == []


@pytest.mark.parametrize(("values", "gate", "value", "limit"), [
    ((1.2,), "track", 1.2, 1.0),
    ((-1.01,), "track", -1.01, 1.0),
    ((0.0, 0.6), "angle", 0.6, 0.5),
    ((0.0, 0.1, -0.7), "angle", -0.7, 0.5),
    ((0.0, math.nan), "non_finite_state", "theta1", None),
    ((0.0, 0.0, 0.0, math.inf), "non_finite_state", "x_dot", None),
])
def test_each_gate_trips_with_time_gate_value_and_limit(values: tuple, gate: str, value: object,
                                                        limit: float | None) -> None:
    g = gates()
    event = g.check_state(state(*values), 2.5, 123)
    assert event is not None
    assert event.to_dict() == {"time": 2.5, "t_ns": 123, "gate": gate, "value": value,
                               "limit": limit}
    assert g.trips == 1 and g.report()["events"] == [event.to_dict()]


def test_a_limit_set_to_none_is_off() -> None:
    g = gates(track_limit_m=None, angle_limit_rad=None)
    assert g.check_state(state(50.0, 3.0, -3.0), 0.0, 0) is None
    assert g.check_state(state(math.nan), 0.0, 0) is not None  # non-finite always trips


def test_events_are_bounded_but_every_trip_is_counted() -> None:
    g = gates()
    for k in range(MAX_EVENTS + 20):
        g.check_state(state(2.0), k * 1e-3, k)
    report = g.report()
    assert report["trips"] == MAX_EVENTS + 20
    assert len(report["events"]) == MAX_EVENTS and report["events_dropped"] == 20


def test_inputs_beyond_the_limit_are_saturated_and_counted() -> None:
    g = gates()
    assert g.limit_input([149.0], 0) == [149.0]
    assert g.limit_input([400.0], 0) == [150.0]
    assert g.limit_input([-1000.0], 0) == [-150.0]
    assert g.saturations == 2


def test_each_input_is_saturated_within_its_own_bounds_counted_once_per_control() -> None:
    g = gates(TWO)
    asked = [20.0, 1.5]
    assert g.limit_input(asked, 0) == [20.0, 1.5] and asked == [20.0, 1.5]  # a new list
    assert g.limit_input([-5.0, 1.5], 0) == [0.0, 1.5]  # a thrust cannot pull
    assert g.limit_input([50.0, -3.0], 0) == [40.0, -2.0]  # both: one saturated control
    assert g.limit_input([20.0, 2.5], 0) == [20.0, 2.0]
    assert g.saturations == 3


@pytest.mark.parametrize("force", [math.nan, math.inf, -math.inf, 1500.1, -1e12])
def test_non_finite_and_huge_inputs_are_implausible(force: float) -> None:
    assert not gates().plausible([force])


@pytest.mark.parametrize("u", [[401.0, 0.0], [0.0, -20.5], [0.0, math.nan], [math.inf, 0.0],
                               [-400.5, 0.0]])
def test_any_input_beyond_ten_times_its_largest_magnitude_is_implausible(u: list) -> None:
    g = gates(TWO)
    assert g.limits.sanity == (400.0, 20.0)
    assert not g.plausible(u)


def test_an_input_at_the_sanity_bound_is_plausible_and_saturated() -> None:
    g = gates()
    assert g.plausible([1500.0]) and g.limit_input([1500.0], 0) == [150.0]
    two = gates(TWO)
    assert two.plausible([-400.0, 20.0]) and two.limit_input([-400.0, 20.0], 0) == [0.0, 2.0]


def test_slew_limit_bounds_the_change_per_second_from_the_last_applied_input() -> None:
    g = gates(slew_limit_per_s=10_000.0)
    assert g.limit_input([100.0], 0) == [100.0]  # nothing applied yet: no reference
    g.note_applied([0.0], 0)
    assert g.limit_input([100.0], 1_000_000) == [pytest.approx(10.0)]  # 1 ms at 10 kN/s
    assert g.limit_input([-100.0], 2_000_000) == [pytest.approx(-20.0)]
    assert g.limit_input([5.0], 1_000_000) == [5.0]  # within the step: untouched
    assert g.slew_limited == 2


def test_the_slew_limit_holds_each_input_from_its_own_last_value_in_its_own_unit() -> None:
    g = gates(TWO, slew_limit_per_s=1_000.0)  # 1 unit per ms, N/s and V/s alike
    g.note_applied([20.0, 0.0], 0)
    assert g.limit_input([30.0, 0.5], 1_000_000) == [pytest.approx(21.0), 0.5]
    assert g.limit_input([30.0, 2.0], 1_000_000) == [pytest.approx(21.0), pytest.approx(1.0)]
    assert g.limit_input([20.5, -0.5], 1_000_000) == [20.5, -0.5]
    assert g.slew_limited == 2  # counted once per control, however many inputs it held back
    # Saturated first, then slew-limited: a thrust asked below 0 gets its bound, 0, within the
    # slew step of 1 from 0.5.
    g.note_applied([0.5, 0.0], 0)
    assert g.limit_input([-10.0, 0.0], 1_000_000) == [0.0, 0.0]
    assert g.saturations == 1


def test_safe_output_is_zero_or_a_saturated_cart_brake() -> None:
    assert gates().safe_input(state(0.0, 0.0, 0.0, 2.0)) == [0.0]
    brake = gates(braking="cart_brake", brake_n_per_mps=50.0)
    assert brake.safe_input(state(0.0, 0.0, 0.0, 2.0)) == [-100.0]
    assert brake.safe_input(state(0.0, 0.0, 0.0, -10.0)) == [150.0]
    assert brake.safe_input(state(0.0, 0.0, 0.0, math.nan)) == [0.0]


def test_the_safe_output_of_several_inputs_is_each_off_even_with_braking() -> None:
    """Off is zero, or the bound nearest zero for a range without it (motors off); a cart
    brake is for one input only. Each call gives a new list."""
    off = gates(TWO).safe_input(state(0.0, 0.0, 0.0, 2.0))
    assert off == [0.0, 0.0]
    above = Inputs(("a", "b", "c"), ("V", "V", "V"), (1.0, -3.0, -5.0), (4.0, 3.0, -2.0))
    assert gates(above).safe_input(state()) == [1.0, 0.0, -2.0]
    brake = gates(TWO, braking="cart_brake", brake_n_per_mps=50.0)
    first = brake.safe_input(state(0.0, 0.0, 0.0, 2.0))
    assert first == [0.0, 0.0]
    first.append(9.0)
    assert brake.safe_input(state(0.0, 0.0, 0.0, 2.0)) == [0.0, 0.0]


def test_the_report_names_each_input_with_its_unit_bounds_and_sanity_limit() -> None:
    g = gates(TWO, slew_limit_per_s=500.0)
    g.limit_input([50.0, 0.0], 0)
    report = g.report()
    assert report["inputs"] == [
        {"name": "thrust", "unit": "N", "low": 0.0, "high": 40.0, "sanity_limit": 400.0},
        {"name": "volts", "unit": "V", "low": -2.0, "high": 2.0, "sanity_limit": 20.0}]
    assert report["slew_limit_per_s"] == 500.0 and report["saturations"] == 1
    assert "input" not in report and "inputs" not in report["limits"]
    assert report["limits"]["sanity_factor"] == 10.0
    assert report["limits"]["track_limit_m"] == 1.0


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"sanity_factor": 0.5}, "sanity_factor must be >= 1, got 0.5"),
    ({"track_limit_m": -1.0}, "track_limit_m must be > 0 or None, got -1.0"),
    ({"slew_limit_per_s": 0.0}, "slew_limit_per_s must be > 0 or None, got 0.0"),
    ({"braking": "anchor"}, "braking must be 'none' or 'cart_brake', got 'anchor'"),
])
def test_limits_name_the_bad_value(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SafetyLimits(FORCE, **kwargs)


def test_an_input_limit_of_zero_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match=r"input 'force': limits \(-0.0, 0.0\) must be finite "
                                         r"with low < high"):
        Inputs.single("force", "N", 0.0)


def test_limits_from_config_pick_the_angle_limit_of_the_run_mode() -> None:
    cfg = load_config(None, {"safety.angle_limit_rad.realtime": 0.4,
                             "safety.angle_limit_rad.lockstep": None,
                             "safety.sanity_force_factor": 4})
    realtime = limits_from_config(cfg.safety, "realtime", FORCE)
    assert realtime.angle_limit_rad == 0.4 and realtime.sanity == (600.0,)
    assert realtime.inputs is FORCE and realtime.sanity_factor == 4
    assert limits_from_config(cfg.safety, "lockstep", FORCE).angle_limit_rad is None
    assert limits_from_config(cfg.safety, "realtime", TWO).sanity == (160.0, 8.0)
