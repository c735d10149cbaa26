"""The `swingup` law (controller_client/controllers/swingup.py): its physics against an
independent derivation, its hand-over to the balancer and its fall-back, its refusals.

The pendulum energy the law drives to zero is computed here with NumPy from the model's own
parameters (E = J0 w^2 / 2 + m g l (cos theta - 1), J0 the inertia about the pivot) and
checked against the law's and against the model's total-energy kernel with the base at rest;
on a cart-pole without friction the energy never falls while the law swings (dE/dt =
-m l a w cos theta >= 0 for E < 0) and reaches the upright's; the balancer's output inside
the catch window is the built-in lqr's own.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from controller_client.controllers import PluginError, create_controller
from controller_client.controllers.swingup import SwingUp
from hil.dynamics import create_model


def law_for(plant: str, params: dict[str, float] | None = None, **options: object
            ) -> SwingUp:
    """The law as the controller builds it (the registry's wrapper holds it as `.law`)."""
    model = create_model(plant, params)
    wrapper = create_controller("swingup", dt_s=1e-3, max_force_n=model.max_force_n,
                                plant=model.describe(), model=model, options=options)
    law = wrapper.law
    assert isinstance(law, SwingUp)
    return law


def numpy_energy(plant: str, theta: float, rate: float) -> float:
    """The pendulum's energy, zero upright at rest, from the parameters' definitions."""
    p = create_model(plant).params.to_dict()
    if plant == "cartpole":
        m, l_com, inertia = p["pole_mass_kg"], p["pole_com_m"], p["pole_inertia_kgm2"]
    else:
        m, l_com = p["pendulum_mass_kg"], p["pendulum_length_m"] / 2
        inertia = p["pendulum_inertia_kgm2"]
    j0 = inertia + m * l_com**2
    return 0.5 * j0 * rate**2 + m * p["gravity_mps2"] * l_com * (np.cos(theta) - 1.0)


@pytest.mark.parametrize("plant", ["cartpole", "rotary"])
def test_the_energy_is_the_pendulums_from_the_parameters_and_the_models_kernel(
        plant: str) -> None:
    law = law_for(plant)
    model = create_model(plant)
    mgl = law.pendulum.mgl_j
    for theta, rate in ((math.pi, 0.0), (0.0, 0.0), (2.0, -3.0), (-0.7, 5.0)):
        state = np.array([0.3, theta, 0.0, rate])  # the base at rest
        law.compute(state, 0.0)
        assert law.energy == pytest.approx(numpy_energy(plant, theta, rate), rel=1e-12,
                                           abs=1e-15)
        # The model's total energy with the base at rest: the pendulum's, from the pivot.
        assert model.energy(state) == pytest.approx(law.energy + mgl, rel=1e-12)
    law.compute(np.array([0.0, math.pi, 0.0, 0.0]), 0.0)
    assert law.energy == pytest.approx(-2.0 * mgl)


def swing(law: SwingUp, plant: str, params: dict[str, float], start: float, steps: int
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Energies, inputs and modes of a closed loop from `start` (rad from upright)."""
    model = create_model(plant, params)
    x = np.array([0.0, start, 0.0, 0.0])
    energy, inputs, modes = np.zeros(steps), np.zeros(steps), np.zeros(steps)
    for k in range(steps):
        inputs[k] = law.compute(x, k * 1e-3)
        energy[k], modes[k] = law.energy, law.mode
        model.step(x, inputs[k], 1e-3, x)
    return energy, inputs, modes


def test_without_friction_the_energy_never_falls_while_swinging_and_reaches_zero() -> None:
    frictionless = {"joint_friction_nmsprad": 0.0, "cart_friction_nspm": 0.0}
    law = law_for("cartpole", frictionless, catch_angle_rad=1e-3, catch_rate_rad_s=1e-3)
    law.set_gains((5.0, 0.0, 0.0))  # the energy law alone: no recentring of the cart
    model = create_model("cartpole", frictionless)
    x = np.array([0.0, math.pi - 0.05, 0.0, 0.0])
    energy, pumped = np.zeros(4000), np.zeros(4000)  # pumped: the sign of w cos theta
    for k in range(4000):
        u = law.compute(x, k * 1e-3)
        assert abs(u) <= law.high and not law.balancing  # a window this small: never
        energy[k], pumped[k] = law.energy, np.sign(x[3] * math.cos(x[1]))
        model.step(x, u, 1e-3, x)
    mgl = law.pendulum.mgl_j
    below = energy[:-1] < -0.05 * mgl  # pumping; nearer zero it holds E there
    falls = np.nonzero(below & (np.diff(energy) < -1e-12 * mgl))[0]
    # The law holds its input over a step: only a step in which w cos theta changes sign
    # (the pumping direction flips within it) may lose a little.
    assert set(falls) <= set(np.nonzero(pumped[:-1] != pumped[1:])[0])
    assert np.diff(energy)[below].min() > -1e-4 * mgl
    assert energy[0] == pytest.approx(numpy_energy("cartpole", math.pi - 0.05, 0.0))
    assert energy[-1] > -0.01 * mgl and energy.max() < 0.05 * mgl  # to zero, the upright's


@pytest.mark.parametrize("plant", ["cartpole", "rotary"])
def test_the_input_stays_within_its_limit_and_the_catch_hands_over(plant: str) -> None:
    params = {"pendulum_damping_nms_per_rad": 5e-5} if plant == "rotary" else {}
    law = law_for(plant, params)
    energy, inputs, modes = swing(law, plant, params, math.pi, 4000)
    limit = create_model(plant).max_force_n
    assert np.abs(inputs).max() <= limit
    assert modes[0] == 0 and modes[-1] == 1 and law.catches == 1 and law.releases == 0
    assert abs(energy[-1]) < 1e-3 * law.pendulum.mgl_j  # balanced upright


def test_inside_the_window_the_output_is_the_built_in_lqrs_and_outside_it_swings() -> None:
    law = law_for("cartpole")
    model = create_model("cartpole")
    lqr = create_controller("lqr", dt_s=1e-3, max_force_n=model.max_force_n,
                            plant=model.describe(), model=model)
    near = np.array([0.2, 0.1 + 2 * math.pi, 0.1, 0.5])  # a turn later: still near upright
    u = law.compute(near, 0.0)
    assert law.balancing and law.catches == 1
    assert u == lqr.compute(near, 0.0)
    between = np.array([0.2, 0.45, 0.1, 0.5])  # beyond the catch, within the release angle
    law.compute(between, 0.0)
    assert law.balancing  # hysteresis: no switch back for a balancer's first moves
    fallen = np.array([0.2, 0.7, 0.1, 0.5])
    law.compute(fallen, 0.0)
    assert not law.balancing and law.releases == 1
    law.compute(between, 0.0)
    assert not law.balancing  # and no catch outside the catch window
    too_fast = np.array([0.0, 0.1, 0.0, 7.0])  # in the angle window, over catch_rate_rad_s
    law.compute(too_fast, 0.0)
    assert not law.balancing
    assert math.isnan(law.sigma)  # the Lyapunov monitor judges the balancing only


def test_a_target_reaches_the_balancer_and_reset_starts_swinging_again() -> None:
    law = law_for("cartpole")
    near = np.array([0.0, 0.05, 0.0, 0.0])
    target = np.array([0.3, 0.0, 0.0, 0.0])
    assert law.compute(near, 0.0, target) != law.compute(near, 0.0)  # tracks the cart's x
    assert law.balancing
    law.reset()
    assert not law.balancing and math.isnan(law.energy)


def test_plants_it_does_not_fit_and_bad_options_and_gains_are_refused() -> None:
    with pytest.raises(PluginError, match="cartpole and rotary"):
        law_for("dip")
    with pytest.raises(PluginError, match=r"controller\.options: .*no option 'catch'"):
        law_for("cartpole", catch=0.2)
    with pytest.raises(PluginError, match="catch_angle_rad <= release_angle_rad"):
        law_for("cartpole", catch_angle_rad=0.8, release_angle_rad=0.5)
    with pytest.raises(PluginError, match="max_accel_g must be a finite number > 0"):
        law_for("cartpole", max_accel_g=0)
    with pytest.raises(PluginError, match="balance cannot be swingup"):
        law_for("cartpole", balance="swingup")
    law = law_for("cartpole")
    with pytest.raises(ValueError, match="k_energy > 0"):
        law.set_gains((0.0, 0.2, 0.8))
    assert law.gains == SwingUp.default_gains
