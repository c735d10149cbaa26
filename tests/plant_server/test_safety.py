"""Safety gates: state limits trip with {time, gate, value, limit}; forces are saturated and
slew-limited, implausible ones refused; the safe output (zero or a cart brake)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hil.config import load_config
from plant_server.safety import MAX_EVENTS, SafetyGates, SafetyLimits, limits_from_config

NAMES = ("x", "theta1", "theta2", "x_dot", "theta1_dot", "theta2_dot")


def gates(**kwargs: object) -> SafetyGates:
    base: dict[str, object] = {"max_force_n": 150.0, "sanity_force_n": 1500.0,
                               "track_limit_m": 1.0, "angle_limit_rad": 0.5}
    return SafetyGates(SafetyLimits(**{**base, **kwargs}), NAMES)


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


def test_forces_beyond_the_limit_are_saturated_and_counted() -> None:
    g = gates()
    assert g.limit_force(149.0, 0) == 149.0
    assert g.limit_force(400.0, 0) == 150.0
    assert g.limit_force(-1000.0, 0) == -150.0
    assert g.saturations == 2


@pytest.mark.parametrize("force", [math.nan, math.inf, -math.inf, 1500.1, -1e12])
def test_non_finite_and_huge_forces_are_implausible(force: float) -> None:
    assert not gates().plausible(force)


def test_a_force_at_the_sanity_bound_is_plausible_and_saturated() -> None:
    g = gates()
    assert g.plausible(1500.0) and g.limit_force(1500.0, 0) == 150.0


def test_slew_limit_bounds_the_change_per_second_from_the_last_applied_force() -> None:
    g = gates(slew_limit_n_per_s=10_000.0)
    assert g.limit_force(100.0, 0) == 100.0  # nothing applied yet: no reference
    g.note_applied(0.0, 0)
    assert g.limit_force(100.0, 1_000_000) == pytest.approx(10.0)  # 1 ms at 10 kN/s
    assert g.limit_force(-100.0, 2_000_000) == pytest.approx(-20.0)
    assert g.limit_force(5.0, 1_000_000) == 5.0  # within the step: untouched
    assert g.slew_limited == 2


def test_safe_output_is_zero_or_a_saturated_cart_brake() -> None:
    assert gates().safe_force_n(state(0.0, 0.0, 0.0, 2.0)) == 0.0
    brake = gates(braking="cart_brake", brake_n_per_mps=50.0)
    assert brake.safe_force_n(state(0.0, 0.0, 0.0, 2.0)) == -100.0
    assert brake.safe_force_n(state(0.0, 0.0, 0.0, -10.0)) == 150.0
    assert brake.safe_force_n(state(0.0, 0.0, 0.0, math.nan)) == 0.0


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"max_force_n": 0.0}, "max_force_n must be > 0, got 0.0"),
    ({"sanity_force_n": 100.0}, r"sanity_force_n must be >= max_force_n \(150.0\), got 100.0"),
    ({"track_limit_m": -1.0}, "track_limit_m must be > 0 or None, got -1.0"),
    ({"braking": "anchor"}, "braking must be 'none' or 'cart_brake', got 'anchor'"),
])
def test_limits_name_the_bad_value(kwargs: dict, message: str) -> None:
    base = {"max_force_n": 150.0, "sanity_force_n": 1500.0}
    with pytest.raises(ValueError, match=message):
        SafetyLimits(**{**base, **kwargs})


def test_limits_from_config_pick_the_angle_limit_of_the_run_mode() -> None:
    cfg = load_config(None, {"safety.angle_limit_rad.realtime": 0.4,
                             "safety.angle_limit_rad.lockstep": None,
                             "safety.sanity_force_factor": 4})
    realtime = limits_from_config(cfg.safety, "realtime", 150.0)
    assert realtime.angle_limit_rad == 0.4 and realtime.sanity_force_n == 600.0
    assert limits_from_config(cfg.safety, "lockstep", 150.0).angle_limit_rad is None
