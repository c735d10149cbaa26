"""FMU plants against the built-in numba cart-pole: same equations, same integrator, so the
trajectories agree to rounding; the FMU's energy output and the two-input variant's power
balance are checked against the built-in model's energy."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from fmubuild import fmus_fixture  # noqa: F401  (the session's FMUs)
from plantconfig import fmu_model

from hil.config import ConfigError
from hil.dynamics import CartPoleModel, CartPoleParams
from hil.dynamics.fmu.model import FmuStepError

STATES = ["x", "theta", "x_dot", "theta_dot"]
DT_S = 1e-3


def inputs(steps: int, n: int = 1) -> np.ndarray:
    """A fixed input sequence that swings the pole and saturates the force (+-20 N)."""
    k = np.arange(steps)
    force = 30.0 * np.sin(2 * np.pi * 0.7 * k * DT_S) * (k % 900 < 600)
    torque = 3.0 * np.cos(2 * np.pi * 1.3 * k * DT_S)
    return np.stack([force, torque][:n], axis=1)


def trajectory(model, x0: list[float], us: np.ndarray) -> np.ndarray:
    x = np.array(x0, dtype=np.float64)
    rows = [x.copy()]
    out = np.empty_like(x)
    for u in us:
        model.step(x, np.ascontiguousarray(u), DT_S, out)
        x, out = out, x
        rows.append(x.copy())
    return np.array(rows)


def test_a_model_exchange_fmu_follows_the_builtin_cartpole_to_rounding(
        tmp_path: Path, fmus: SimpleNamespace) -> None:
    model = fmu_model(tmp_path, fmus.me)
    assert model.kind == "model_exchange"
    us = inputs(3000)
    ours = trajectory(model, [0.0, 0.1, 0.0, 0.0], us)
    builtin = trajectory(CartPoleModel(), [0.0, 0.1, 0.0, 0.0], us)
    assert np.abs(builtin[:, 1]).max() > 1.0  # it swung far from upright: not a trivial path
    np.testing.assert_allclose(ours, builtin, rtol=0, atol=1e-9)


def test_an_fmu_with_sources_and_no_binary_is_built_for_this_platform(
        tmp_path: Path, fmus: SimpleNamespace) -> None:
    model = fmu_model(tmp_path, fmus.sources_only)
    us = inputs(500)
    np.testing.assert_allclose(trajectory(model, [0.0, 0.1, 0.0, 0.0], us),
                               trajectory(CartPoleModel(), [0.0, 0.1, 0.0, 0.0], us), atol=1e-9)


@pytest.mark.parametrize("name", ["me3", "cs3"])
def test_an_fmi3_fmu_follows_the_builtin_cartpole_to_rounding(
        tmp_path: Path, fmus: SimpleNamespace, name: str) -> None:
    cs = name == "cs3"
    model = fmu_model(tmp_path, getattr(fmus, name), params={"theta0": 0.1},
                      **({"fmu_outputs": STATES} if cs else {}))
    assert (model.kind, model.describe()["fmi_version"]) == (
        "co_simulation" if cs else "model_exchange", 3)
    us = inputs(2000)
    np.testing.assert_allclose(trajectory(model, [0.0, 0.1, 0.0, 0.0], us),
                               trajectory(CartPoleModel(), [0.0, 0.1, 0.0, 0.0], us),
                               rtol=0, atol=1e-9)
    if not cs:  # linearisable through its derivatives, as an FMI 2 FMU
        np.testing.assert_allclose(model.derivatives([0.0, 0.2, 0.1, -0.3], [3.0]),
                                   CartPoleModel.derivatives_at([0.0, 0.2, 0.1, -0.3], 3.0),
                                   rtol=1e-12)


def test_a_co_simulation_fmu_steps_with_the_same_rk4_substeps(
        tmp_path: Path, fmus: SimpleNamespace) -> None:
    model = fmu_model(tmp_path, fmus.cs, fmu_outputs=STATES, substeps=4,
                      params={"theta0": 0.1})
    assert model.kind == "co_simulation"
    us = inputs(3000)
    ours = trajectory(model, [0.0, 0.1, 0.0, 0.0], us)
    builtin = trajectory(CartPoleModel(substeps=4), [0.0, 0.1, 0.0, 0.0], us)
    np.testing.assert_allclose(ours, builtin, rtol=0, atol=1e-9)


def test_co_simulation_outputs_in_the_order_chosen_and_the_energy_output_agrees(
        tmp_path: Path, fmus: SimpleNamespace) -> None:
    everything = fmu_model(tmp_path / "all", fmus.cs, params={"theta0": 0.1},
                           initial_state=[0.0, 0.1, 0.0, 0.0, 0.1 * 0.25 * 9.81 * np.cos(0.1)])
    assert everything.state_names == ("x", "theta", "x_dot", "theta_dot", "energy_J")
    assert everything.state_units == ("m", "rad", "m/s", "rad/s", "J")
    path = trajectory(everything, [0.0, 0.1, 0.0, 0.0, 0.0], inputs(1500))
    energy = [CartPoleModel.energy_at(row[:4]) for row in path[1:]]
    np.testing.assert_allclose(path[1:, 4], energy, rtol=1e-12, atol=1e-12)
    chosen = fmu_model(tmp_path / "two", fmus.cs, fmu_outputs=["theta", "x"],
                       params={"theta0": 0.1}, initial_state=[0.1, 0.0])
    assert chosen.state_names == ("theta", "x")
    np.testing.assert_allclose(trajectory(chosen, [0.1, 0.0], inputs(1500))[:, [1, 0]],
                               path[:, :2], rtol=0, atol=1e-12)


def test_the_description_comes_from_the_model_description(
        tmp_path: Path, fmus: SimpleNamespace) -> None:
    desc = fmu_model(tmp_path, fmus.two_inputs).describe()
    assert desc["name"] == "fmu:cartpole"
    assert desc["state_names"] == STATES
    assert desc["state_units"] == ["m", "rad", "m/s", "rad/s"]
    assert desc["input_names"] == ["F", "tau"]
    assert desc["input_units"] == ["N", "N.m"]
    assert desc["input_limits"] == [[-20.0, 20.0], [-2.0, 2.0]]
    assert desc["regulated"] == ["x", "theta"]
    np.testing.assert_allclose(desc["equilibrium_input"], [0.0, 0.0], atol=1e-9)


def test_parameters_are_set_by_name_before_initialisation(
        tmp_path: Path, fmus: SimpleNamespace) -> None:
    changed = {"cart_mass_kg": 2.0, "pole_mass_kg": 0.3, "cart_friction_nspm": 0.5}
    model = fmu_model(tmp_path, fmus.me, params=changed)
    us = inputs(2000)
    builtin = CartPoleModel(CartPoleParams(**changed))
    np.testing.assert_allclose(trajectory(model, [0.0, 0.1, 0.0, 0.0], us),
                               trajectory(builtin, [0.0, 0.1, 0.0, 0.0], us), atol=1e-9)
    with pytest.raises(ConfigError, match=r"no parameter\(s\) 'pole_mass'.*its parameters: "
                                          r"cart_mass_kg, pole_mass_kg"):
        fmu_model(tmp_path / "unknown", fmus.me, params={"pole_mass": 0.3})


def test_the_two_input_fmu_puts_each_inputs_power_into_the_energy(
        tmp_path: Path, fmus: SimpleNamespace) -> None:
    """dE/dt = F v + tau w - bc v^2 - bp w^2, with E the built-in model's energy."""
    model = fmu_model(tmp_path, fmus.two_inputs)
    p = CartPoleParams()
    rng = np.random.default_rng(7)
    for _ in range(20):
        x = rng.uniform(-1.5, 1.5, 4)
        u = rng.uniform([-20, -2], [20, 2])
        grad = np.array([(CartPoleModel.energy_at(x + h) - CartPoleModel.energy_at(x - h))
                         / 2e-6 for h in np.eye(4) * 1e-6])
        power = u[0] * x[2] + u[1] * x[3] - p.cart_friction_nspm * x[2] ** 2 \
            - p.joint_friction_nmsprad * x[3] ** 2
        assert grad @ model.derivatives(x, u) == pytest.approx(power, rel=1e-6, abs=1e-6)
    us = inputs(1000, 2)
    us[:, 1] = 0.0  # no torque: the built-in model's path
    np.testing.assert_allclose(trajectory(model, [0.0, 0.1, 0.0, 0.0], us),
                               trajectory(CartPoleModel(), [0.0, 0.1, 0.0, 0.0], us[:, :1]),
                               atol=1e-9)


def test_a_failing_call_in_a_step_names_the_call_the_time_and_the_fmus_log(
        tmp_path: Path, fmus: SimpleNamespace) -> None:
    model = fmu_model(tmp_path, fmus.me, params={"fail_at_s": 0.25})
    x, out = np.array([0.0, 0.1, 0.0, 0.0]), np.empty(4)
    with pytest.raises(FmuStepError, match=r"fmi2GetDerivatives returned fmi2Error at "
                                           r"t = 0\.25 s; its log: \[Error\] "
                                           r"fmi2GetDerivatives: the cart left its rails"):
        for _ in range(1000):
            model.step(x, np.zeros(1), DT_S, out)
            x, out = out, x


@pytest.mark.parametrize(("name", "call"), [("me", "fmi2CompletedIntegratorStep"),
                                            ("me3", "fmi3CompletedIntegratorStep")])
def test_an_event_the_fmu_asks_for_is_refused_at_its_time(
        tmp_path: Path, fmus: SimpleNamespace, name: str, call: str) -> None:
    model = fmu_model(tmp_path, getattr(fmus, name), params={"event_at_s": 0.2})
    x, out = np.array([0.0, 0.1, 0.0, 0.0]), np.empty(4)
    with pytest.raises(FmuStepError, match=rf"{call} asked for an event at t = 0\.2 s, which "
                                           r"the runtime does not handle"):
        for _ in range(400):
            model.step(x, np.zeros(1), DT_S, out)
            x, out = out, x
    assert model.time_s == pytest.approx(0.199, abs=1e-12)  # the failed step is not counted


def test_an_fmi3_do_step_failure_names_the_call_the_time_and_the_log(
        tmp_path: Path, fmus: SimpleNamespace) -> None:
    model = fmu_model(tmp_path, fmus.cs3, params={"fail_at_s": 0.1}, fmu_outputs=STATES,
                      initial_state=[0.0, 0.0, 0.0, 0.0])
    x, out = np.zeros(4), np.empty(4)
    with pytest.raises(FmuStepError, match=r"fmi3DoStep returned fmi3Error at t = 0\.1 s; its "
                                           r"log: \[Error\] fmi3DoStep: the cart left"):
        for _ in range(200):
            model.step(x, np.zeros(1), DT_S, out)


def test_operator_commands_do_not_import_fmpy() -> None:
    code = ("import sys, hil.cli, hil.config, hil.dynamics, plant_server.main; "
            "print('fmpy' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == "False"
