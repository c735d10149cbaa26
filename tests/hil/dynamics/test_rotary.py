"""The rotary (QUBE-Servo 2) model against an independent 3-D derivation, energy conservation
without damping, and its description."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from hil.dynamics import create_model
from hil.dynamics.rotary import RotaryModel, RotaryParams, derivatives, total_energy
from tests.hil.dynamics import reference_rotary

DEFAULT = RotaryParams()
UNDAMPED = DEFAULT.replace(arm_damping_nms_per_rad=0.0, pendulum_damping_nms_per_rad=0.0,
                           back_emf_v_s_per_rad=0.0)


@pytest.mark.parametrize("seed", range(8))
def test_derivatives_match_the_3d_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    state = rng.uniform([-3, -3, -20, -20], [3, 3, 20, 20])
    volts = float(rng.uniform(-10, 10))
    params = DEFAULT.replace(arm_length_m=float(rng.uniform(0.05, 0.2)),
                             pendulum_mass_kg=float(rng.uniform(0.01, 0.2)))
    ours = derivatives(state, volts, params)
    ref = reference_rotary.derivatives(state, volts, params)
    np.testing.assert_allclose(ours[:2], state[2:], rtol=0, atol=0)
    np.testing.assert_allclose(ours[2:], ref[2:], rtol=1e-8, atol=1e-8)


def test_energy_is_conserved_without_damping_or_input() -> None:
    model = RotaryModel(UNDAMPED, substeps=10)
    state = np.array([0.0, 2.0, 3.0, -1.0])  # a large swing with the arm turning
    e0 = total_energy(state, UNDAMPED)
    out = np.empty(4)
    for _ in range(2000):  # 2 s at 1 kHz
        model.step(state, 0.0, 1e-3, out)
        state, out = out, state
    assert abs(total_energy(state, UNDAMPED) - e0) < 1e-9 * max(abs(e0), 1e-3)
    assert abs(state[1] - 2.0) > 1e-3  # it did move


def test_damping_and_back_emf_only_take_energy_out() -> None:
    model = RotaryModel(DEFAULT)
    state = np.array([0.0, 2.0, 3.0, -1.0])
    out = np.empty(4)
    energies = []
    for _ in range(500):
        model.step(state, 0.0, 1e-3, out)
        state, out = out, state
        energies.append(total_energy(state, DEFAULT))
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(energies))


def test_upright_is_an_unstable_equilibrium_and_voltage_turns_the_arm() -> None:
    np.testing.assert_array_equal(derivatives(np.zeros(4), 0.0), np.zeros(4))
    assert derivatives(np.array([0.0, 0.05, 0.0, 0.0]), 0.0)[3] > 0  # it falls further
    assert derivatives(np.zeros(4), 1.0)[2] > 0  # + volts: + arm acceleration


def test_the_input_is_a_voltage_saturated_at_its_limit() -> None:
    model = create_model("rotary", {"max_voltage_v": 5.0})
    d = model.describe()
    assert (d["input_names"], d["input_units"], d["input_limits"]) == (["voltage"], ["V"],
                                                                      [[-5.0, 5.0]])
    assert d["state_names"] == ["arm", "pendulum", "arm_dot", "pendulum_dot"]
    assert d["regulated"] == ["pendulum"]
    a, b = np.empty(4), np.empty(4)
    model.step(np.zeros(4), 50.0, 1e-3, a)
    model.step(np.zeros(4), 5.0, 1e-3, b)
    np.testing.assert_array_equal(a, b)
