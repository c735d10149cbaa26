"""The 2-DOF helicopter against an independent 3-D derivation, energy conservation without
damping, its hand-derived linearisation at the trim, per-input saturation, and its description."""

from __future__ import annotations

import json

import numpy as np
import pytest
import reference_helicopter as ref

from hil.dynamics import HelicopterModel, create_model
from hil.dynamics.contract import find_trim
from hil.dynamics.helicopter import HelicopterParams, derivatives, total_energy

DEFAULT = HelicopterParams()
UNDAMPED = DEFAULT.replace(pitch_damping_nms_per_rad=0.0, yaw_damping_nms_per_rad=0.0)


@pytest.mark.parametrize("seed", range(8))
def test_derivatives_match_the_3d_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    state = rng.uniform([-1.2, -4, -10, -10], [1.2, 4, 10, 10])
    u = rng.uniform([-24, -15], [24, 15])
    params = DEFAULT.replace(com_offset_m=float(rng.uniform(0.05, 0.3)),
                             mass_kg=float(rng.uniform(0.5, 2.0)))
    ours = derivatives(state, u, params)
    np.testing.assert_array_equal(ours[:2], state[2:])
    np.testing.assert_allclose(ours[2:], ref.derivatives(state, u, params)[2:], rtol=1e-12,
                               atol=1e-12)


def test_energy_matches_the_reference_and_is_conserved_without_damping_or_input() -> None:
    model = HelicopterModel(UNDAMPED, substeps=8)
    state = np.array([0.4, 0.0, 1.5, 3.0])  # pitching and turning: coupled through cos(pitch)
    e0 = total_energy(state, UNDAMPED)
    assert e0 == pytest.approx(ref.energy(state, UNDAMPED), rel=1e-13)
    out = np.empty(4)
    for _ in range(3000):
        model.step(state, np.zeros(2), 1e-3, out)
        state = out.copy()
    assert abs(state[0] - 0.4) > 0.1  # it moved: the check covers a nonlinear swing
    assert total_energy(state, UNDAMPED) == pytest.approx(e0, rel=1e-9)


def test_damping_dissipates_energy_at_the_rate_of_its_torques() -> None:
    state = np.array([0.2, 0.0, 1.0, 2.0])
    d = derivatives(state, np.zeros(2), DEFAULT)
    p = DEFAULT
    # dE/dt = q'.(Q) with Q = -B q' when no voltage: the energy's own gradient along d.
    eps = 1e-6
    rate = (total_energy(state + eps * d, p) - total_energy(state - eps * d, p)) / (2 * eps)
    expected = -(p.pitch_damping_nms_per_rad * 1.0 ** 2 + p.yaw_damping_nms_per_rad * 2.0 ** 2)
    assert rate == pytest.approx(expected, rel=1e-7)


def test_the_declared_trim_holds_the_body_level_and_the_solver_finds_it_too() -> None:
    model = HelicopterModel()
    trim = model.equilibrium_input
    # [[K_pp, K_py], [K_yp, K_yy]] u = [m g l, 0], solved here by NumPy.
    k = np.array([[0.204, 0.0068], [0.0219, 0.072]])
    np.testing.assert_allclose(trim, np.linalg.solve(k, [1.3872 * 9.81 * 0.186, 0.0]),
                               rtol=1e-12)
    np.testing.assert_allclose(model.derivatives(model.equilibrium, trim), 0.0, atol=1e-13)
    found = find_trim(model.derivatives, model.equilibrium, model.inputs)
    assert found.found
    np.testing.assert_allclose(found.u, trim, rtol=1e-9)
    assert model.derivatives(model.equilibrium, np.zeros(2))[2] < 0  # without it, nose down


def test_linearisation_at_the_trim_matches_the_hand_derivation() -> None:
    model = HelicopterModel()
    x0, u0 = model.equilibrium, model.equilibrium_input
    p = DEFAULT
    jp = p.pitch_inertia_kgm2 + p.mass_kg * p.com_offset_m ** 2
    jy = p.yaw_inertia_kgm2 + p.mass_kg * p.com_offset_m ** 2  # cos^2(0) = 1
    # At level flight d/d pitch of -m g l cos(pitch) is m g l sin(0) = 0, the yaw torque is
    # trimmed to 0, and the rate products vanish: only damping and the input gains remain.
    a_hand = np.array([[0, 0, 1, 0], [0, 0, 0, 1],
                       [0, 0, -p.pitch_damping_nms_per_rad / jp, 0],
                       [0, 0, 0, -p.yaw_damping_nms_per_rad / jy]])
    b_hand = np.array([[0, 0], [0, 0],
                       [p.pitch_thrust_nm_per_v / jp, p.yaw_on_pitch_nm_per_v / jp],
                       [p.pitch_on_yaw_nm_per_v / jy, p.yaw_thrust_nm_per_v / jy]])
    h = 1e-6
    a = np.stack([(model.derivatives(x0 + h * e, u0) - model.derivatives(x0 - h * e, u0))
                  / (2 * h) for e in np.eye(4)], axis=1)
    # The dynamics are affine in u: a 1 V difference is exact (a tiny one only adds rounding).
    b = np.stack([(model.derivatives(x0, u0 + e) - model.derivatives(x0, u0 - e)) / 2
                  for e in np.eye(2)], axis=1)
    np.testing.assert_allclose(a, a_hand, atol=1e-7)
    np.testing.assert_allclose(b, b_hand, rtol=1e-12)
    # Away from level the pitch gets the gravity slope m g l sin(pitch) / J_p.
    tilted = np.array([0.3, 0.0, 0.0, 0.0])
    step = np.array([h, 0.0, 0.0, 0.0])
    slope = (model.derivatives(tilted + step, u0)[2]
             - model.derivatives(tilted - step, u0)[2]) / (2 * h)
    assert slope == pytest.approx(p.mass_kg * 9.81 * p.com_offset_m * np.sin(0.3) / jp,
                                  rel=1e-7)


def test_step_is_rk4_of_the_reference_and_saturates_each_input_at_its_own_limit() -> None:
    model = create_model("helicopter", substeps=4)
    state = np.array([0.1, 0.2, 0.5, -0.3])
    u = np.array([30.0, -20.0])  # beyond both limits: 24 V and 15 V
    out = np.empty(4)
    model.step(state, u, 1e-3, out)
    clipped = np.array([24.0, -15.0])
    y, h = state.copy(), 1e-3 / 4
    for _ in range(4):
        k1 = ref.derivatives(y, clipped, DEFAULT)
        k2 = ref.derivatives(y + 0.5 * h * k1, clipped, DEFAULT)
        k3 = ref.derivatives(y + 0.5 * h * k2, clipped, DEFAULT)
        k4 = ref.derivatives(y + h * k3, clipped, DEFAULT)
        y = y + h / 6 * (k1 + 2 * (k2 + k3) + k4)
    np.testing.assert_allclose(out, y, rtol=1e-12, atol=1e-15)
    at_limit = np.empty(4)
    model.step(state, clipped, 1e-3, at_limit)
    np.testing.assert_array_equal(out, at_limit)


def test_a_float_or_a_wrong_length_input_is_refused_naming_the_inputs() -> None:
    model = HelicopterModel()
    out = np.empty(4)
    with pytest.raises(ValueError, match=r"helicopter has 2 inputs \['pitch_voltage', "
                                         r"'yaw_voltage'\]: u must have 2 entries"):
        model.step(np.zeros(4), 1.0, 1e-3, out)
    with pytest.raises(ValueError, match="u must have 2 entries"):
        model.derivatives(np.zeros(4), np.zeros(3))


def test_description_names_both_inputs_the_trim_and_the_regulated_states() -> None:
    d = create_model("helicopter", {"max_yaw_voltage_v": 12.0}).describe()
    assert json.loads(json.dumps(d)) == d
    assert d["input_names"] == ["pitch_voltage", "yaw_voltage"]
    assert d["input_units"] == ["V", "V"]
    assert d["input_limits"] == [[-24.0, 24.0], [-12.0, 12.0]]
    assert d["equilibrium"] == [0.0] * 4
    np.testing.assert_allclose(d["equilibrium_input"], DEFAULT.trim_voltages())
    assert d["regulated"] == ["pitch", "yaw"] and d["wraps"] == ["yaw"]
    model = HelicopterModel()
    assert (model.input_name, model.input_unit, model.max_force_n) == ("pitch_voltage", "V",
                                                                       24.0)


def test_params_are_validated_naming_the_field() -> None:
    with pytest.raises(ValueError, match="mass_kg must be > 0"):
        HelicopterParams(mass_kg=0.0)
