"""Cart-pole: the compiled kernels against the independent NumPy reference, the physics the
equations must obey, and the parts of the model interface that differ from the DIP's."""

from __future__ import annotations

import math

import numpy as np
import pytest
import reference_dynamics as ref
from hypothesis import given, settings
from hypothesis import strategies as st

from hil.dynamics import CartPoleModel, CartPoleParams
from hil.dynamics.cartpole import bias_forces, derivatives, mass_matrix, total_energy

DEFAULT = CartPoleParams()
FRICTIONLESS = DEFAULT.replace(cart_friction_nspm=0.0, joint_friction_nmsprad=0.0)
UPRIGHT = np.zeros(4)
HANGING = np.array([0.0, math.pi, 0.0, 0.0])
LARGE_SWING = np.array([0.1, 2.0, 0.5, 3.0])
STATE_SCALE = np.array([2.0, 2 * math.pi, 5.0, 20.0])
finite = {"allow_nan": False, "allow_infinity": False}


def test_reference_jacobians_are_the_derivatives_of_the_positions():
    q = np.array([0.3, 0.7])
    for body in ref.cartpole_mechanism(DEFAULT).bodies:
        np.testing.assert_allclose(
            ref.finite_difference(body.position, q).T, body.jacobian(q), atol=1e-8
        )
        np.testing.assert_allclose(
            ref.finite_difference(body.jacobian, q), body.jacobian_dq(q), atol=1e-8
        )


def test_derivatives_match_reference_on_a_fixed_random_batch():
    rng = np.random.default_rng(7)
    mech = ref.cartpole_mechanism(DEFAULT)
    for state in rng.uniform(-1.0, 1.0, (400, 4)) * STATE_SCALE:
        force = rng.uniform(-40.0, 40.0)
        ref.assert_matches_reference(
            derivatives(state, force), ref.state_derivatives(mech, state, force)
        )


@st.composite
def cartpole_params(draw) -> CartPoleParams:
    length = draw(st.floats(0.05, 2.0, **finite))
    return CartPoleParams(
        cart_mass_kg=draw(st.floats(0.1, 10.0, **finite)),
        pole_mass_kg=draw(st.floats(0.01, 2.0, **finite)),
        pole_length_m=length,
        pole_com_m=length * draw(st.floats(0.01, 1.0, **finite)),
        pole_inertia_kgm2=draw(st.floats(1e-5, 0.1, **finite)),
        gravity_mps2=draw(st.floats(0.0, 20.0, **finite)),
        cart_friction_nspm=draw(st.floats(0.0, 2.0, **finite)),
        joint_friction_nmsprad=draw(st.floats(0.0, 0.1, **finite)),
    )


states = st.tuples(*(st.floats(-s, s, **finite) for s in STATE_SCALE)).map(np.array)


@settings(max_examples=150, deadline=None)
@given(state=states, force=st.floats(-40.0, 40.0, **finite), params=cartpole_params())
def test_kernels_match_reference_for_any_state_force_and_params(state, force, params):
    mech, p = ref.cartpole_mechanism(params), params.as_array()
    q, qd = state[:2], state[2:]
    ref.assert_matches_reference(
        derivatives(state, force, params), ref.state_derivatives(mech, state, force)
    )
    ref.assert_matches_reference(mass_matrix(state, p), ref.mass_matrix(mech, q))
    ref.assert_matches_reference(
        bias_forces(state, p), ref.bias(mech, q, qd)
    )
    assert total_energy(state, params) == pytest.approx(ref.energy(mech, state), abs=1e-12)


def test_rk4_step_matches_reference_rk4_with_the_same_substeps():
    # A long step, so that a mistake in any RK4 stage shows far above the tolerance.
    mech = ref.cartpole_mechanism(DEFAULT)
    out = np.empty(4)
    CartPoleModel(DEFAULT, substeps=2).step(LARGE_SWING, 7.0, 0.04, out)
    expected = ref.step(mech, LARGE_SWING, 7.0, 0.04, 2)
    ref.assert_matches_reference(out, expected)


def test_energy_is_conserved_without_friction_or_force():
    assert abs(total_energy(LARGE_SWING)) > 0.05
    assert ref.energy_drift(CartPoleModel(FRICTIONLESS), LARGE_SWING, 10_000) < 1e-6


def test_friction_never_increases_energy_without_force():
    changes = ref.energy_steps(CartPoleModel(DEFAULT), LARGE_SWING, 5_000)
    assert np.all(changes <= 1e-12)
    assert np.sum(changes) < -0.001


def test_energy_change_equals_the_work_of_the_force_without_friction():
    force = 3.0 * np.sin(2 * math.pi * 0.9 * np.arange(5_000) * 1e-3)
    residual, work = ref.work_energy_residual(CartPoleModel(FRICTIONLESS), LARGE_SWING, force)
    assert work > 0.1
    assert residual < 1e-8


def test_upright_equilibrium_is_unstable_a_tiny_perturbation_grows():
    model = CartPoleModel(DEFAULT)
    np.testing.assert_array_equal(model.derivatives(UPRIGHT, 0.0), np.zeros(4))
    trajectory = ref.simulate(model, np.array([0.0, 1e-6, 0.0, 0.0]), np.zeros(3_000))
    assert abs(trajectory[-1, 1]) > 0.1
    assert np.max(ref.linearisation_eigenvalues(model, UPRIGHT).real) > 1.0


def test_hanging_equilibrium_is_stable_with_friction_a_perturbation_decays():
    model = CartPoleModel(DEFAULT)
    np.testing.assert_allclose(model.derivatives(HANGING, 0.0), np.zeros(4), atol=1e-14)
    assert ref.swing_decay(model, HANGING + np.array([0.0, 0.1, 0.0, 0.0]), HANGING, 20_000) < 0.5
    eigenvalues = ref.linearisation_eigenvalues(model, HANGING)
    assert np.max(eigenvalues.real) <= 1e-6
    assert np.sum(eigenvalues.real < -1e-3) == 3  # all but the cart's free position


def test_step_saturates_the_force_at_max_force_n_and_is_deterministic():
    model = CartPoleModel(DEFAULT)
    assert model.max_force_n == 20.0
    saturated, at_limit, again = np.empty(4), np.empty(4), np.empty(4)
    model.step(LARGE_SWING, 1e3, 1e-3, saturated)
    model.step(LARGE_SWING, 20.0, 1e-3, at_limit)
    CartPoleModel(CartPoleParams()).step(LARGE_SWING, 1e3, 1e-3, again)
    np.testing.assert_array_equal(saturated, at_limit)
    np.testing.assert_array_equal(saturated, again)


def test_state_layout_and_description():
    model = CartPoleModel()
    assert model.name == "cartpole"
    assert model.state_names == ("x", "theta", "x_dot", "theta_dot")
    assert model.state_units == ("m", "rad", "m/s", "rad/s")
    description = model.describe()
    assert description["state_names"] == ["x", "theta", "x_dot", "theta_dot"]
    assert description["params"] == DEFAULT.to_dict()
    assert description["input_limits"] == [[-20.0, 20.0]]


def test_default_pole_is_a_uniform_rod():
    assert DEFAULT.pole_inertia_kgm2 == pytest.approx(0.1 * 0.5**2 / 12)
    assert DEFAULT.pole_com_m == DEFAULT.pole_length_m / 2


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("pole_mass_kg", 0.0, "pole_mass_kg must be > 0, got 0.0"),
        ("pole_com_m", 0.6, r"pole_com_m must be in \(0, pole_length_m=0.5\], got 0.6"),
        ("joint_friction_nmsprad", -1.0, "joint_friction_nmsprad must be >= 0"),
        ("pole_inertia_kgm2", math.nan, "pole_inertia_kgm2 must be finite"),
    ],
)
def test_invalid_params_are_rejected_naming_the_field_and_the_fix(field, value, message):
    with pytest.raises(ValueError, match=message):
        CartPoleParams(**{field: value})


def test_kernels_compute_the_same_interpreted_as_compiled():
    # The kernels' Python source (NUMBA_DISABLE_JIT) in a subprocess, against the compiled form.
    ref.assert_interpreted_matches_compiled("cartpole", LARGE_SWING, 5.0)
