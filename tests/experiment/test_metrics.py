"""The control metrics against independent references: python-control's step_info on the
system itself (its own simulation and its exact final value), and integrals done by hand."""

from __future__ import annotations

import math

import control
import numpy as np
import pytest

from hil.experiment.metrics import effort, step_metrics, tracking_errors

DT = 0.002


def close(got: float, want: float, sample: float = DT) -> bool:
    """Within 2 % or one sample (a time read off a sampled response)."""
    return abs(got - want) <= max(0.02 * abs(want), sample)


@pytest.mark.parametrize(("wn", "zeta"), [(2.0, 0.3), (5.0, 0.7), (1.5, 1.2)])
def test_step_metrics_of_a_second_order_response_match_python_control(wn: float,
                                                                     zeta: float) -> None:
    sys = control.tf([wn**2], [1.0, 2 * zeta * wn, wn**2])
    tau = np.arange(0.0, 20.0, DT)
    want = control.step_info(sys, tau)
    y = control.step_response(sys, tau).outputs
    # Recorded as a lab would: the state at 0.4 m, stepped by 0.3 m at t = 1 s.
    t = np.concatenate([np.arange(0.0, 1.0, DT), 1.0 + tau])
    x = 0.4 + 0.3 * np.concatenate([np.zeros(round(1.0 / DT)), y])
    got = step_metrics(t, x, 1.0, 0.7)
    assert close(got["rise_time_s"], want["RiseTime"])
    assert close(got["settling_time_s"], want["SettlingTime"])
    assert close(got["peak_time_s"], want["PeakTime"])
    assert got["peak"] == pytest.approx(0.3 * want["Peak"], rel=0.02)
    assert got["overshoot_pct"] == pytest.approx(want["Overshoot"], rel=0.02, abs=0.05)
    assert got["initial"] == pytest.approx(0.4)
    assert got["steady_state_error"] == pytest.approx(0.7 - x[-1])


def test_the_step_window_ends_at_its_end_and_an_unmoved_state_has_no_step_figures() -> None:
    t = np.arange(0.0, 4.0, DT)
    x = np.where(t >= 1.0, 1.0 - np.exp(-(t - 1.0) / 0.2), 0.0) + np.where(t >= 3.0, 5.0, 0.0)
    windowed = step_metrics(t, x, 1.0, 1.0, until_s=3.0)
    assert windowed["final"] == pytest.approx(1.0, abs=1e-4)  # the kick at 3 s is outside
    assert close(windowed["rise_time_s"], 0.2 * math.log(9.0))  # 10-90 % of a lag: tau ln 9
    assert step_metrics(t, np.zeros_like(t), 1.0, 1.0)["rise_time_s"] is None


def test_iae_ise_itae_of_a_decaying_error_against_their_integrals() -> None:
    tau, end, at = 0.5, 4.0, 1.0
    t = np.arange(0.0, at + end + DT / 2, DT)
    e = np.where(t >= at, -np.exp(-(t - at) / tau), 7.0)  # before the signal: not counted
    got = tracking_errors(t, e, at)
    k = math.exp(-end / tau)
    assert got["iae"] == pytest.approx(tau * (1 - k), rel=1e-4)
    assert got["ise"] == pytest.approx(tau / 2 * (1 - k * k), rel=1e-4)
    assert got["itae"] == pytest.approx(tau**2 * (1 - k) - tau * end * k, rel=1e-4)


def test_effort_is_the_integral_of_u_squared_and_its_peak() -> None:
    t = np.arange(0.0, 2.0 + DT / 2, DT)
    got = effort(t, 3.0 * np.sin(math.pi * t))
    assert got["effort"] == pytest.approx(9.0, rel=1e-5)  # 9 * (2 / 2)
    assert got["peak_abs"] == pytest.approx(3.0, rel=1e-5)
