"""The generic LQR with several inputs: K against SciPy and a closed form, the trim found or
declared, per-input saturation, closed loops that hold the helicopter and a bicopter from an
offset, and plants it cannot hold refused at load naming the reason."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg

from controller_client.controllers import PluginError, create_controller
from controller_client.controllers.lqr import LQRDesignError
from controller_client.controllers.riccati import care_residual, lqr, unstabilisable_modes
from hil.dynamics import create_model
from hil.dynamics.helicopter import HelicopterParams


def law_for(model, gains=None, **options):
    return create_controller("lqr", gains, dt_s=1e-3, model=model, plant=model.describe(),
                             max_force_n=model.max_force_n, **options)


def test_mimo_gain_matches_the_closed_form_of_two_rotated_double_integrators() -> None:
    # x1'' = v1, x2'' = v2 with v = Rot u (Rot orthogonal): with R = r I the cost is the same
    # in v, so K = Rot' K_v, K_v of each double integrator [sqrt(q1/r), sqrt(q2/r + 2 sqrt(q1/r))].
    q1, q2, r, angle = 4.0, 1.0, 0.25, 0.7
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    a = np.zeros((4, 4))
    a[0, 2] = a[1, 3] = 1.0
    b = np.vstack([np.zeros((2, 2)), rot])
    k, _ = lqr(a, b, np.diag([q1, q1, q2, q2]), r * np.eye(2))
    kp, kd = math.sqrt(q1 / r), math.sqrt(q2 / r + 2 * math.sqrt(q1 / r))
    k_v = np.array([[kp, 0, kd, 0], [0, kp, 0, kd]])
    np.testing.assert_allclose(k, rot.T @ k_v, rtol=1e-10, atol=1e-12)


def test_helicopter_gain_is_scipys_on_the_hand_linearisation() -> None:
    model = create_model("helicopter")
    law = law_for(model)
    p = HelicopterParams()
    jp = p.pitch_inertia_kgm2 + p.mass_kg * p.com_offset_m ** 2
    jy = p.yaw_inertia_kgm2 + p.mass_kg * p.com_offset_m ** 2
    a = np.array([[0, 0, 1, 0], [0, 0, 0, 1], [0, 0, -p.pitch_damping_nms_per_rad / jp, 0],
                  [0, 0, 0, -p.yaw_damping_nms_per_rad / jy]])
    b = np.array([[0, 0], [0, 0],
                  [p.pitch_thrust_nm_per_v / jp, p.yaw_on_pitch_nm_per_v / jp],
                  [p.pitch_on_yaw_nm_per_v / jy, p.yaw_thrust_nm_per_v / jy]])
    q, r = np.diag(law.gains[:4]), np.diag(law.gains[4:])
    x = scipy.linalg.solve_continuous_are(a, b, q, r)
    np.testing.assert_allclose(law.k, np.linalg.solve(r, b.T @ x), rtol=1e-6, atol=1e-7)
    assert care_residual(a, b, q, r, law.p_matrix) < 1e-6
    assert np.linalg.eigvals(a - b @ law.k).real.max() < 0
    assert law.gain_names == ("q_pitch", "q_yaw", "q_pitch_rate", "q_yaw_rate",
                              "r_pitch_voltage", "r_yaw_voltage")
    # Bryson: 1/15 of each input's half range (24 V and 15 V).
    assert law.gains[4:] == (pytest.approx(1 / 1.6 ** 2), pytest.approx(1.0))
    np.testing.assert_allclose(law.describe()["equilibrium_input"], p.trim_voltages())


def test_the_law_is_u_eq_minus_k_dx_saturated_per_input_with_sigma_from_p() -> None:
    model = create_model("helicopter")
    law = law_for(model)
    x = np.array([0.02, -0.03, 0.1, 0.05])
    u = law.compute(x, 0.0)
    assert isinstance(u, np.ndarray) and u.shape == (2,)
    np.testing.assert_allclose(u, model.equilibrium_input - law.k @ x, rtol=1e-12)
    assert law.sigma == pytest.approx(math.sqrt(x @ law.p_matrix @ x), rel=1e-12)
    far = law.compute(np.array([-2.0, 3.0, 0.0, 0.0]), 0.0)  # beyond both limits
    np.testing.assert_array_equal(far, [24.0, -15.0])


def test_lqr_holds_the_helicopter_at_level_from_an_offset_in_closed_loop() -> None:
    model = create_model("helicopter")
    law = law_for(model)
    x, out = np.array([0.3, -0.5, 0.0, 0.0]), np.empty(4)
    low, high = np.array(model.inputs.low), np.array(model.inputs.high)
    for k in range(5000):
        u = law.compute(x, k * 1e-3)
        assert np.all(u >= low) and np.all(u <= high)
        model.step(x, u, 1e-3, out)
        x = out.copy()
    assert np.abs(x).max() < 1e-4  # level, heading back to 0, at rest
    np.testing.assert_allclose(u, model.equilibrium_input, atol=1e-3)


def test_gains_by_name_options_and_set_gains_redesign_k() -> None:
    model = create_model("helicopter")
    law = law_for(model, q=[50, 50, 1, 1], r=[1.0, 2.0])
    assert law.gains == (50.0, 50.0, 1.0, 1.0, 1.0, 2.0)
    k0 = law.k.copy()
    law.set_gains([50, 50, 1, 1, 0.1, 0.2])
    assert np.abs(law.k).max() > 2 * np.abs(k0).max()  # cheaper inputs, larger gains
    with pytest.raises(ValueError, match=r"option r must be a list of 2 weights, one per "
                                         r"input, got 0.5"):
        law_for(model, r=0.5)
    cart = create_model("cartpole")
    assert law_for(cart).gain_names[-1] == "r"  # one input: the name it always had


BICOPTER = '''
import math
import numpy as np


class Bicopter:
    state_names = ("x", "z", "phi", "x_dot", "z_dot", "phi_dot")
    state_units = ("m", "m", "rad", "m/s", "m/s", "rad/s")
    input_names = ("thrust_left", "thrust_right")
    input_units = ("N", "N")
    input_limits = ((0.0, 40.0), (0.0, 40.0))
    equilibrium = (0.0, 1.0, 0.0, 0.0, 0.0, 0.0)

    def __init__(self, mass_kg=4.0):
        self.m = mass_kg

    def derivatives(self, state, u):
        thrust = u[0] + u[1]
        return np.array([state[3], state[4], state[5],
                         -thrust * math.sin(state[2]) / self.m,
                         thrust * math.cos(state[2]) / self.m - 9.81,
                         0.25 * (u[1] - u[0]) / 0.05])


class Trimmed(Bicopter):
    equilibrium_input = (19.62, 19.62)


class Stuck:
    state_names = ("drift", "v")
    state_units = ("m", "m/s")
    input_names = ("push",)
    input_units = ("N",)
    input_limits = (1.0,)

    def derivatives(self, state, u):
        return np.array([0.5 * state[0], -state[1] + u[0]])  # the drift grows, unreached
'''


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setattr(sys, "path", list(sys.path))
    sys.modules.pop("lab_bicopter", None)
    (tmp_path / "lab_bicopter.py").write_text(BICOPTER)
    return [str(tmp_path)]


@pytest.mark.parametrize("cls", ["Bicopter", "Trimmed"])
def test_lqr_hovers_a_bicopter_with_or_without_a_declared_trim(lab, cls) -> None:
    model = create_model(f"lab_bicopter:{cls}", {}, search_path=lab)
    law = law_for(model)
    np.testing.assert_allclose(law.u_eq, [19.62, 19.62], rtol=1e-9)
    x, out = np.array([0.3, 0.6, 0.1, 0.0, 0.0, 0.0]), np.empty(6)
    for k in range(6000):
        model.step(x, law.compute(x, k * 1e-3), 1e-3, out)
        x = out.copy()
    # At its set point (z = 1 m, from 0.4 m away), not where thrust alone would leave it.
    np.testing.assert_allclose(x, model.equilibrium, atol=5e-3)


def test_a_plant_no_input_can_hold_is_refused_with_the_residual(lab) -> None:
    heavy = create_model("lab_bicopter:Bicopter", {"mass_kg": 9.0}, search_path=lab)
    with pytest.raises(LQRDesignError, match=r"lqr cannot hold plant 'lab_bicopter:Bicopter' "
                       r"at its equilibrium: no input within the limits holds the "
                       r"equilibrium: the best, \{'thrust_left': 40.0, 'thrust_right': 40.0\}, "
                       r"leaves \|d state/dt\| = 0.92"):
        law_for(heavy)
    assert issubclass(LQRDesignError, PluginError)  # the controller's exit 2 at load


def test_an_unstabilisable_plant_is_refused_naming_the_mode(lab) -> None:
    stuck = create_model("lab_bicopter:Stuck", {}, search_path=lab)
    with pytest.raises(LQRDesignError, match=r"not stabilisable: the mode\(s\) 0.5\+0j of A "
                                             r"are not reached by the inputs \['push'\]"):
        law_for(stuck)
    a = np.array([[0.5, 0.0], [0.0, -1.0]])
    assert unstabilisable_modes(a, np.array([[0.0], [1.0]])) == [0.5]
    assert unstabilisable_modes(a, np.array([[1.0], [0.0]])) == []


def test_the_worked_example_of_docs_extending_hovers_under_lqr(tmp_path, monkeypatch) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "extending.md").read_text()
    block = next(b.split("\n", 1)[1] for b in doc.split("```")
                 if b.startswith("python") and "class Bicopter" in b)
    monkeypatch.setattr(sys, "path", list(sys.path))
    sys.modules.pop("doc_bicopter", None)
    (tmp_path / "doc_bicopter.py").write_text(block)
    model = create_model("doc_bicopter:Bicopter", {}, search_path=[str(tmp_path)])
    law = law_for(model)
    assert law.gain_names[-2:] == ("r_thrust_left", "r_thrust_right")
    x, out = np.array([0.1, 0.9, 0.05, 0.0, 0.0, 0.0]), np.empty(6)
    for k in range(5000):
        model.step(x, law.compute(x, k * 1e-3), 1e-3, out)
        x = out.copy()
    np.testing.assert_allclose(x, model.equilibrium, atol=0.01)


def test_the_helicopter_config_is_held_level_by_its_law() -> None:
    from hil.config import build_plant_model, load_config

    config = load_config(Path(__file__).resolve().parents[2] / "configs" / "helicopter.yaml")
    model = build_plant_model(config)
    assert model.name == "helicopter" and config.controller.name == "lqr"
    law = law_for(model)
    x, out = np.array(config.plant.initial_state, dtype=float), np.empty(4)
    for k in range(round(config.run.duration_s * config.run.rate_hz)):
        model.step(x, law.compute(x, k / config.run.rate_hz), 1 / config.run.rate_hz, out)
        x = out.copy()
    assert np.abs(x).max() < 1e-3  # level, heading 0, at rest by the end of the run


@pytest.mark.parametrize(("plant", "shape"), [("cartpole", (4,)), ("rotary", (4,)),
                                              ("helicopter", (2, 4))])
def test_k_and_the_description_keep_their_one_input_shape(plant, shape) -> None:
    model = create_model(plant)
    law = law_for(model)
    assert law.k.shape == shape
    d = law.describe()
    assert json.loads(json.dumps(d)) == d
    assert np.array(d["K"]).shape == shape
    x = 0.01 * np.arange(1, 5)
    u = law.compute(x, 0.0)
    if len(shape) == 1:  # one input: a float, u = u_eq - K dx (u_eq = 0 for the pendulums)
        assert isinstance(u, float) and u == pytest.approx(-(law.k @ x), rel=1e-12)


def test_a_wrapping_state_is_regulated_the_short_way_round() -> None:
    model = create_model("helicopter")  # yaw wraps, pitch does not
    law = law_for(model)
    near = law.compute(np.array([0.05, 0.1, 0.0, 0.0]), 0.0)
    np.testing.assert_allclose(law.compute(np.array([0.05, 0.1 + 2 * math.pi, 0, 0]), 0.0),
                               near, rtol=1e-12)
    assert not np.allclose(law.compute(np.array([0.05 + 2 * math.pi, 0.1, 0, 0]), 0.0), near)
    x, out = np.array([0.0, 4.0, 0.0, 0.0]), np.empty(4)  # 4 rad: 2.28 rad short of a turn
    for k in range(6000):
        model.step(x, law.compute(x, k * 1e-3), 1e-3, out)
        x = out.copy()
    assert x[1] == pytest.approx(2 * math.pi, abs=1e-3)  # on round, not 4 rad back
