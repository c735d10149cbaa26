"""Stability monitors: what each figure means, windows, floors, bounded memory, JSON safety."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hil.runtime.stability import (
    ActuatorMonitor,
    ConditionMonitor,
    LyapunovMonitor,
    StabilityMonitor,
    SurfaceMonitor,
)


def test_lyapunov_ratio_counts_steps_where_v_decreased() -> None:
    m = LyapunovMonitor(window=100)
    for s in (4.0, 3.0, -2.0, 2.5, 1.0):  # |sigma| down, down, up, down
        m.update(s)
    st = m.statistics()
    assert (st.steps, st.evaluated_steps, st.decreased_steps) == (5, 4, 3)
    assert st.decrease_ratio == pytest.approx(0.75)
    assert st.v_last == pytest.approx(0.5)


def test_lyapunov_skips_steps_starting_on_the_surface() -> None:
    m = LyapunovMonitor(window=100, sigma_floor=0.1)
    for s in (1.0, 0.5, 0.05, 0.08, 0.02, 0.09):
        m.update(s)
    st = m.statistics()
    assert st.evaluated_steps == 2 and st.decrease_ratio == 1.0


def test_lyapunov_window_covers_only_the_last_steps() -> None:
    m = LyapunovMonitor(window=10)
    for k in range(50):
        m.update(100.0 - k)  # decreasing
    for k in range(10):
        m.update(51.0 + k)  # increasing: fills the whole window
    st = m.statistics()
    assert st.window_decrease_ratio == 0.0
    assert st.decrease_ratio == pytest.approx(49 / 59)


def test_no_evaluated_step_is_a_ratio_of_one() -> None:
    m = LyapunovMonitor(sigma_floor=1.0)
    m.update(0.1)
    m.update(0.5)
    assert m.statistics().decrease_ratio == 1.0


@pytest.mark.parametrize("limits", [10.0, [(-10.0, 10.0)]], ids=["L", "low-high"])
@pytest.mark.parametrize("as_vector", [False, True], ids=["number", "list"])
def test_actuator_duty_and_slew_hits(limits: object, as_vector: bool) -> None:
    m = ActuatorMonitor(limits, slew_limit_n=5.0, window=4)  # type: ignore[arg-type]
    for u in (0.0, 10.0, -10.0, -9.0, -10.0, 0.0):
        m.update([u] if as_vector else u)
    st = m.statistics()
    assert st.saturated_steps == 3 and st.saturation_duty == pytest.approx(0.5)
    assert st.window_saturation_duty == pytest.approx(0.5)  # -10, -9, -10, 0
    assert st.slew_hits == 3  # 0->10, 10->-10, -10->0
    assert st.window_slew_hits == 2  # 10->-10 and -10->0 fall in the last four steps
    assert st.max_step_change_n == 20.0


def test_actuator_duty_and_slew_of_several_inputs_each_within_its_own_bounds() -> None:
    """A step is saturated when any input sits at a bound of its own [low, high] (a thrust
    at 0 of 0..40 is at its bound); its change is the largest |du| over the inputs."""
    m = ActuatorMonitor([(0.0, 40.0), (-2.0, 2.0)], slew_limit_n=5.0, window=4)
    for u in ((20.0, 0.0),    # inside both
              (40.0, 0.0),    # thrust at its high bound; du 20: a slew hit
              (38.0, 1.0),    # inside
              (36.0, -2.0),   # the second at its low bound; du 3 (the largest |du|)
              (0.0, 0.5),     # thrust at its low bound, 0; du 36: a hit
              (1.0, 0.5)):    # inside
        m.update(u)
    st = m.statistics()
    assert st.steps == 6 and st.saturated_steps == 3
    assert st.saturation_duty == pytest.approx(0.5)
    assert st.window_saturation_duty == pytest.approx(0.5)  # 38, 36/-2, 0, 1
    assert st.slew_hits == 2 and st.window_slew_hits == 1
    assert st.max_step_change_n == 36.0
    with pytest.raises(ValueError):  # one value per input
        m.update((1.0, 0.5, 0.0))


def test_actuator_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="must be > 0"):
        ActuatorMonitor(0.0, 1.0)
    with pytest.raises(ValueError, match="must be > 0"):
        ActuatorMonitor(10.0, 0.0)
    with pytest.raises(ValueError, match="low < high"):
        ActuatorMonitor([(0.0, 40.0), (2.0, 2.0)], 1.0)
    with pytest.raises(ValueError, match="low < high"):
        ActuatorMonitor([], 1.0)


def test_condition_and_surface_figures() -> None:
    c, s = ConditionMonitor(window=2), SurfaceMonitor(window=2)
    assert c.statistics().max is None and s.statistics().abs_max is None
    for v in (400.0, 500.0, 410.0, 420.0):
        c.update(v)
    for v in (-3.0, 4.0, -1.0, 1.0):
        s.update(v)
    cs, ss = c.statistics(), s.statistics()
    assert (cs.last, cs.max, cs.window_max, cs.mean) == (420.0, 500.0, 420.0, 432.5)
    assert (ss.abs_last, ss.abs_max, ss.window_abs_max, ss.window_rms) == (1.0, 4.0, 1.0, 1.0)


def test_memory_is_fixed_whatever_the_run_length() -> None:
    m = StabilityMonitor(150.0, 50.0, window=64)
    rings = [m.lyapunov._ring, m.actuator._sat, m.actuator._slews, m.condition._ring,
             m.surface._ring]
    before = [r.values.nbytes for r in rings]
    for k in range(10_000):
        m.update(math.sin(k), 10.0 * math.cos(k), 412.0)
    assert [r.values.nbytes for r in rings] == before == [64 * 8] * 5
    assert m.summary()["lyapunov"]["steps"] == 10_000


@pytest.mark.parametrize("limits", [150.0, [(-150.0, 150.0), (0.0, 24.0)]],
                         ids=["one", "two"])
def test_summary_is_json_safe_even_after_a_divergence(limits: object) -> None:
    m = StabilityMonitor(limits, 50.0, window=8)  # type: ignore[arg-type]
    n = 1 if isinstance(limits, float) else len(limits)  # type: ignore[arg-type]
    m.update(1.0, [0.0] * n, 412.0)
    m.update(math.inf, [math.nan] * n, math.inf)
    text = json.dumps(m.summary(), allow_nan=False)
    assert json.loads(text)["window"] == 8


def test_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="window must be >= 1"):
        SurfaceMonitor(window=0)


def test_summary_sections_feed_the_default_gates() -> None:
    from hil.config import GatesConfig
    m = StabilityMonitor(150.0, 50.0)
    for s in np.linspace(5.0, 0.0, 100):
        m.update(float(s), 1.0, 412.0)
    summary = m.summary()
    gates = GatesConfig()
    for path in (*gates.stability_max, *gates.stability_min):
        section, key = path.split(".")
        assert isinstance(summary[section][key], float)
