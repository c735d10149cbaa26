"""The simulated pendulum of the host and QEMU builds against hil's DIP model, numerically;
the board's encoder estimator; the settings parser of the simulated ports.

sim/dip.c is a port of hil/dynamics/dip.py's numba kernels. In double (the host build) it
must match them to 1e-12; in float (the QEMU build: the Cortex-M4F's FPU is single
precision) to what float32 allows, over a step and over a second of free motion.
"""

from __future__ import annotations

import math
import subprocess

import numpy as np
import pytest
from fw_kit import build

from hil.dynamics.dip import DIPParams, derivatives_kernel, rk4_step_kernel

P = DIPParams().as_array()
rng = np.random.default_rng(15)
STATES = [np.array([0.0, 0.1, -0.05, 0.0, 0.0, 0.0]),
          np.array([0.3, math.pi, -2.0, 1.5, -4.0, 6.0]),
          *(rng.uniform([-1, -math.pi, -math.pi, -3, -10, -10],
                        [1, math.pi, math.pi, 3, 10, 10]) for _ in range(20))]
FORCES = [0.0, 12.5, -150.0, 400.0]  # 400 N: saturated at 150 by the step


def run(program: str, lines: list[str]) -> list[list[float]]:
    path = build("check-programs") / "check" / program
    out = subprocess.run([str(path)], input="".join(f"{line}\n" for line in lines),
                         capture_output=True, text=True, check=True, timeout=60)
    assert "runtime error" not in out.stderr, out.stderr
    return [[float(v) for v in line.split()] for line in out.stdout.splitlines()]


def fmt(state: np.ndarray) -> str:
    return " ".join(repr(float(v)) for v in state)


def test_the_double_model_matches_hil_dynamics_to_1e_12() -> None:
    lines, expected = [], []
    for state in STATES:
        for force in FORCES:
            out = np.empty(6)
            derivatives_kernel(state, min(max(force, -150.0), 150.0), P, out)
            lines.append(f"deriv {min(max(force, -150.0), 150.0)!r} {fmt(state)}")
            expected.append(out.copy())
            rk4_step_kernel(state, force, 0.002, 4, P, out)
            lines.append(f"step 0.002 4 {force!r} {fmt(state)}")
            expected.append(out.copy())
    got = np.array(run("dip_check", lines))
    np.testing.assert_allclose(got, np.array(expected), rtol=1e-12, atol=1e-12)


def test_a_second_of_free_motion_double_and_float() -> None:
    """500 steps of 2 ms from a tilt: double to 1e-9, float to 2e-3 rad (chaos grows both)."""
    state = np.array([0.0, 0.1, -0.05, 0.0, 0.0, 0.0])
    ref = state.copy()
    for _ in range(500):
        rk4_step_kernel(ref, 0.0, 0.002, 4, P, ref)
    line = f"run 0.002 4 500 0.0 {fmt(state)}"
    (double,) = run("dip_check", [line])
    (single,) = run("dip_check_float", [line])
    np.testing.assert_allclose(double, ref, atol=1e-9)
    np.testing.assert_allclose(single[:3], ref[:3], atol=2e-3)
    assert abs(ref[1]) > 0.5  # it did fall: the comparison covers large angles


def test_one_float_step_is_within_float32_rounding() -> None:
    lines, expected = [], []
    for state in STATES:
        out = np.empty(6)
        rk4_step_kernel(state, 12.5, 0.002, 4, P, out)
        lines.append(f"step 0.002 4 12.5 {fmt(state)}")
        expected.append(out.copy())
    got = np.array(run("dip_check_float", lines))
    scale = np.maximum(1.0, np.abs(np.array(expected)))
    assert np.max(np.abs(got - np.array(expected)) / scale) < 2e-5


def test_encoder_counts_become_si_positions_and_filtered_rates() -> None:
    cpr, cpm, cutoff = 4096, 20000, 200.0
    scale = [1 / cpm, 2 * math.pi / cpr, 2 * math.pi / cpr]
    lines = [f"enc 3 {cutoff} {' '.join(map(repr, scale))} 0 2048 2048"]
    # the cart at constant speed 0.5 m/s, link 1 hanging (half a revolution = upright - pi)
    for k in range(200):
        t_us = 1000 * k
        lines.append(f"upd {t_us} {round(0.5 * t_us * 1e-6 * cpm)} 0 2048")
    result = subprocess.run([str(build("check-programs") / "check" / "enc_check")],
                            input="".join(f"{line}\n" for line in lines), capture_output=True,
                            text=True, check=True, timeout=60).stdout.splitlines()
    assert result[0] == "ok"
    last = [float(v) for v in result[-1].split()]
    assert last[0] == pytest.approx(0.5 * 0.199, abs=1 / cpm)
    assert last[1] == pytest.approx(-math.pi, rel=1e-6)  # hanging down: -pi from upright
    assert last[2] == pytest.approx(0.0, abs=1e-9)
    assert last[3] == pytest.approx(0.5, rel=0.02)  # the filter has converged
    assert last[4] == 0.0 and last[5] == 0.0
    first = [float(v) for v in result[1].split()]
    assert first[3:] == [0.0, 0.0, 0.0]  # no rate before two samples


@pytest.mark.parametrize("text", ["0.1", "0.0081", "1e-4", "-2.5E3", "150", "9.81", ".5",
                                  "0.15", "1.0e+2", "123456789.125"])
def test_the_settings_parser_reads_numbers_as_python_does(text: str) -> None:
    result = subprocess.run([str(build("check-programs") / "check" / "enc_check")],
                            input=f"set gravity_mps2 {text}\n", capture_output=True, text=True,
                            check=True, timeout=60).stdout.split()
    assert result[0] == "ok"
    gravity = float(result[1 + 7 + 6 + 9])
    assert gravity == float(text)


def test_the_settings_parser_refuses_what_it_cannot_read() -> None:
    lines = ["set rate_hz 0", "set rate_hz 70000", "set watchdog_ms -1", "set nope 1",
             "set initial_state 1,2,3", "set gravity_mps2 1x", "set track_limit_m -1",
             "line rate_hz=250 watchdog_ms=20 initial_state=0,0.2,-0.1,0,0,0",
             "line rate_hz=250 bogus"]
    out = subprocess.run([str(build("check-programs") / "check" / "enc_check")],
                         input="".join(f"{line}\n" for line in lines), capture_output=True,
                         text=True, check=True, timeout=60).stdout.splitlines()
    assert [o.split()[0] for o in out[:7]] == ["bad", "bad", "bad", "unknown", "bad", "bad",
                                               "bad"]
    ok = out[7].split()
    assert ok[0] == "0" and ok[1] == "250" and ok[2] == "20"
    assert [float(v) for v in ok[8:14]] == [0.0, 0.2, -0.1, 0.0, 0.0, 0.0]
    assert out[8].split()[0] == "2"  # the second token is the bad one
