"""Double inverted pendulum: the compiled kernels against the independent NumPy reference,
the physics the equations must obey, and the model interface the plant loop relies on."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import reference_dynamics as ref
from hypothesis import given, settings
from hypothesis import strategies as st

from hil.dynamics import (
    MODELS,
    CartPoleModel,
    DIPModel,
    DIPParams,
    HelicopterModel,
    RotaryModel,
    create_model,
)
from hil.dynamics.dip import (
    bias_forces,
    derivatives,
    derivatives_kernel,
    mass_matrix,
    rk4_step_kernel,
    total_energy,
)

DEFAULT = DIPParams()
FRICTIONLESS = DEFAULT.replace(
    cart_friction_nspm=0.0, joint1_friction_nmsprad=0.0, joint2_friction_nmsprad=0.0
)
UPRIGHT = np.zeros(6)
HANGING = np.array([0.0, math.pi, math.pi, 0.0, 0.0, 0.0])
# Both links far from upright and moving fast: every nonlinear term matters.
LARGE_SWING = np.array([0.1, 2.0, -1.0, 0.5, 3.0, -4.0])
STATE_SCALE = np.array([2.0, 2 * math.pi, 2 * math.pi, 5.0, 20.0, 20.0])


def random_states(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1.0, 1.0, (n, 6)) * STATE_SCALE


# --- the reference itself ---------------------------------------------------------------------


@pytest.mark.parametrize("q", random_states(5, seed=1)[:, :3])
def test_reference_jacobians_are_the_derivatives_of_the_positions(q):
    mech = ref.dip_mechanism(DEFAULT)
    for body in mech.bodies:
        np.testing.assert_allclose(
            ref.finite_difference(body.position, q).T, body.jacobian(q), atol=1e-8
        )
        np.testing.assert_allclose(
            ref.finite_difference(body.jacobian, q), body.jacobian_dq(q), atol=1e-8
        )


# --- kernels against the reference ------------------------------------------------------------


def test_derivatives_match_reference_on_a_fixed_random_batch():
    mech = ref.dip_mechanism(DEFAULT)
    forces = np.random.default_rng(2).uniform(-200.0, 200.0, 400)
    for state, force in zip(random_states(400, seed=3), forces, strict=True):
        ref.assert_matches_reference(
            derivatives(state, force), ref.state_derivatives(mech, state, force)
        )


finite = {"allow_nan": False, "allow_infinity": False}


@st.composite
def dip_params(draw) -> DIPParams:
    length1 = draw(st.floats(0.05, 1.5, **finite))
    length2 = draw(st.floats(0.05, 1.5, **finite))
    return DIPParams(
        cart_mass_kg=draw(st.floats(0.1, 10.0, **finite)),
        link1_mass_kg=draw(st.floats(0.01, 2.0, **finite)),
        link2_mass_kg=draw(st.floats(0.01, 2.0, **finite)),
        link1_length_m=length1,
        link2_length_m=length2,
        link1_com_m=length1 * draw(st.floats(0.01, 1.0, **finite)),
        link2_com_m=length2 * draw(st.floats(0.01, 1.0, **finite)),
        link1_inertia_kgm2=draw(st.floats(1e-5, 0.1, **finite)),
        link2_inertia_kgm2=draw(st.floats(1e-5, 0.1, **finite)),
        gravity_mps2=draw(st.floats(0.0, 20.0, **finite)),
        cart_friction_nspm=draw(st.floats(0.0, 2.0, **finite)),
        joint1_friction_nmsprad=draw(st.floats(0.0, 0.1, **finite)),
        joint2_friction_nmsprad=draw(st.floats(0.0, 0.1, **finite)),
    )


states = st.tuples(*(st.floats(-s, s, **finite) for s in STATE_SCALE)).map(np.array)
forces = st.floats(-300.0, 300.0, **finite)


@settings(max_examples=150, deadline=None)
@given(state=states, force=forces, params=dip_params())
def test_derivatives_match_reference_for_any_state_force_and_params(state, force, params):
    ref.assert_matches_reference(
        derivatives(state, force, params),
        ref.state_derivatives(ref.dip_mechanism(params), state, force),
    )


@settings(max_examples=100, deadline=None)
@given(state=states, params=dip_params())
def test_mass_matrix_bias_and_energy_match_reference(state, params):
    mech, p = ref.dip_mechanism(params), params.as_array()
    q, qd = state[:3], state[3:]
    ref.assert_matches_reference(mass_matrix(state, p), ref.mass_matrix(mech, q))
    ref.assert_matches_reference(
        bias_forces(state, p), ref.bias(mech, q, qd)
    )
    ref.assert_matches_reference(
        np.array([total_energy(state, params)]), np.array([ref.energy(mech, state)])
    )


def test_rk4_step_matches_reference_rk4_with_the_same_substeps():
    # A long step, so that a mistake in any RK4 stage shows far above the tolerance.
    mech = ref.dip_mechanism(DEFAULT)
    model = DIPModel(DEFAULT, substeps=2)
    out = np.empty(6)
    forces = np.random.default_rng(4).uniform(-100.0, 100.0, 50)
    for state, force in zip(random_states(50, seed=5), forces, strict=True):
        model.step(state, force, 0.02, out)
        expected = ref.step(mech, state, force, 0.02, 2)
        ref.assert_matches_reference(out, expected)


# --- physics ----------------------------------------------------------------------------------


def test_energy_is_conserved_without_friction_or_force():
    assert abs(total_energy(LARGE_SWING)) > 0.1
    assert ref.energy_drift(DIPModel(FRICTIONLESS), LARGE_SWING, 10_000) < 1e-6  # 10 s at 1 kHz


def test_friction_never_increases_energy_without_force():
    changes = ref.energy_steps(DIPModel(DEFAULT), LARGE_SWING, 5_000)
    assert np.all(changes <= 1e-12)
    assert np.sum(changes) < -0.01


def test_energy_change_equals_the_work_of_the_force_without_friction():
    t = np.arange(5_000) * 1e-3
    force = 8.0 * np.sin(2 * math.pi * 0.7 * t) + 3.0 * np.cos(2 * math.pi * 2.3 * t)
    residual, work = ref.work_energy_residual(DIPModel(FRICTIONLESS), LARGE_SWING, force)
    assert work > 1.0
    assert residual < 1e-8


def test_upright_equilibrium_is_unstable_a_tiny_perturbation_grows():
    model = DIPModel(DEFAULT)
    nudged = UPRIGHT + np.array([0.0, 1e-6, 0.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(model.derivatives(UPRIGHT, 0.0), np.zeros(6))
    trajectory = ref.simulate(model, nudged, np.zeros(3_000))
    assert np.max(np.abs(trajectory[-1, 1:3])) > 0.1


def test_upright_linearisation_has_a_positive_real_eigenvalue():
    assert np.max(ref.linearisation_eigenvalues(DIPModel(DEFAULT), UPRIGHT).real) > 1.0


def test_hanging_equilibrium_is_stable_with_friction_a_perturbation_decays():
    model = DIPModel(DEFAULT)
    np.testing.assert_allclose(model.derivatives(HANGING, 0.0), np.zeros(6), atol=1e-14)
    nudged = HANGING + np.array([0.0, 0.1, -0.1, 0.0, 0.0, 0.0])
    assert ref.swing_decay(model, nudged, HANGING, 10_000) < 0.5


def test_hanging_linearisation_has_no_eigenvalue_with_positive_real_part():
    eigenvalues = ref.linearisation_eigenvalues(DIPModel(DEFAULT), HANGING)
    assert np.max(eigenvalues.real) <= 1e-6
    # Everything but the cart's free position decays.
    assert np.sum(eigenvalues.real < -1e-3) == 5


# --- the model interface ----------------------------------------------------------------------


def test_step_is_deterministic_bit_for_bit():
    force = np.random.default_rng(6).uniform(-150.0, 150.0, 2_000)
    first = ref.simulate(DIPModel(DEFAULT), LARGE_SWING, force)
    second = ref.simulate(DIPModel(DIPParams()), LARGE_SWING.copy(), force.copy())
    np.testing.assert_array_equal(first, second)


def test_step_saturates_the_force_at_max_force_n():
    model = DIPModel(DEFAULT)

    def step(force):
        out = np.empty(6)
        model.step(LARGE_SWING, force, 1e-3, out)
        return out

    np.testing.assert_array_equal(step(1e6), step(DEFAULT.max_force_n))
    np.testing.assert_array_equal(step(-1e6), step(-DEFAULT.max_force_n))
    assert not np.array_equal(step(0.5 * DEFAULT.max_force_n), step(DEFAULT.max_force_n))
    assert model.max_force_n == 150.0


def test_derivatives_do_not_saturate_the_force():
    low, high = derivatives(UPRIGHT, 150.0), derivatives(UPRIGHT, 300.0)
    np.testing.assert_allclose(high[3:], 2.0 * low[3:])


def test_step_writes_into_out_and_returns_none():
    model = DIPModel(DEFAULT)
    out = np.full(6, np.nan)
    out_id = id(out)
    assert model.step(LARGE_SWING, 1.0, 1e-3, out) is None
    assert id(out) == out_id and np.all(np.isfinite(out))
    assert not np.array_equal(out, LARGE_SWING)


def test_step_may_write_over_its_own_input():
    model = DIPModel(DEFAULT)
    expected = np.empty(6)
    model.step(LARGE_SWING, 5.0, 1e-3, expected)
    state = LARGE_SWING.copy()
    model.step(state, 5.0, 1e-3, state)
    np.testing.assert_array_equal(state, expected)


def test_step_kernel_heap_allocations_do_not_depend_on_substeps():
    # NRT statistics must be switched on before numba is imported: use a fresh interpreter.
    # Numba allocates a small record per array argument when it unboxes a call from Python;
    # the integrator itself allocates nothing, whatever the number of substeps.
    script = textwrap.dedent(
        """
        import numpy as np
        from numba.core.runtime import rtsys
        from hil.dynamics.dip import DIPParams, rk4_step_kernel
        p, state, out = DIPParams().as_array(), np.full(6, 0.1), np.empty(6)
        rk4_step_kernel(state, 1.0, 1e-3, 1, p, out)  # starts the runtime
        counts = []
        for substeps in (1, 100):
            before = rtsys.get_allocation_stats().alloc
            rk4_step_kernel(state, 1.0, 1e-3, substeps, p, out)
            counts.append(rtsys.get_allocation_stats().alloc - before)
        print(*counts)
        """
    )
    env = {**os.environ, "NUMBA_NRT_STATS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    one_substep, many_substeps = map(int, result.stdout.split())
    assert one_substep == many_substeps


def test_kernels_reject_a_state_of_the_wrong_length():
    p, out = DEFAULT.as_array(), np.empty(6)
    with pytest.raises(ValueError, match="6 elements"):
        rk4_step_kernel(np.zeros(4), 0.0, 1e-3, 4, p, out)
    with pytest.raises(ValueError, match="6 elements"):
        derivatives_kernel(np.zeros(6), 0.0, p, np.empty(5))
    with pytest.raises(ValueError, match="packed"):
        rk4_step_kernel(np.zeros(6), 0.0, 1e-3, 4, np.zeros(3), out)
    with pytest.raises(ValueError, match=r"shape \(6,\)"):
        derivatives([0.0, 0.0], 0.0)


def test_step_rejects_a_non_positive_time_step():
    with pytest.raises(ValueError, match="dt_s must be > 0"):
        DIPModel().step(np.zeros(6), 0.0, 0.0, np.empty(6))


def test_state_layout_is_the_design_table():
    model = DIPModel()
    assert model.name == "dip"
    assert model.state_names == ("x", "theta1", "theta2", "x_dot", "theta1_dot", "theta2_dot")
    assert model.state_units == ("m", "rad", "rad", "m/s", "rad/s", "rad/s")
    assert repr(model) == f"DIPModel(params={DIPParams()!r}, substeps=4)"


def test_theta_is_positive_toward_plus_x_pushing_the_cart_tips_the_links_back():
    # Pushing the cart toward +x makes the links tilt toward -x, and gravity pulls a link
    # tilted toward +x further toward +x.
    accelerations = derivatives(UPRIGHT, 10.0)[3:]
    assert accelerations[0] > 0 and accelerations[1] < 0 and accelerations[2] < 0
    tilted = np.array([0.0, 0.1, 0.1, 0.0, 0.0, 0.0])
    assert derivatives(tilted, 0.0)[4] > 0


def test_describe_is_plain_data_with_layout_params_and_limits():
    description = DIPModel(DEFAULT.replace(cart_mass_kg=2.0), substeps=8).describe()
    assert json.loads(json.dumps(description)) == description
    assert description == {
        "name": "dip",
        "state_names": ["x", "theta1", "theta2", "x_dot", "theta1_dot", "theta2_dot"],
        "state_units": ["m", "rad", "rad", "m/s", "rad/s", "rad/s"],
        "params": {**DEFAULT.to_dict(), "cart_mass_kg": 2.0},
        "input_names": ["force"],
        "input_units": ["N"],
        "input_limits": [[-150.0, 150.0]],
        "equilibrium_input": [0.0],
        "regulated": ["theta1", "theta2"],
        "wraps": ["theta1", "theta2"],
        "equilibrium": [0.0] * 6,
        "substeps": 8,
    }


def test_energy_and_derivatives_agree_between_the_model_and_the_functions():
    model = DIPModel(FRICTIONLESS)
    assert model.energy(LARGE_SWING) == total_energy(LARGE_SWING, FRICTIONLESS)
    np.testing.assert_array_equal(
        model.derivatives(list(LARGE_SWING), 2.0), derivatives(LARGE_SWING, 2.0, FRICTIONLESS)
    )
    assert total_energy(HANGING) == pytest.approx(-9.81 * (0.2 * 0.2 + 0.15 * 0.4 + 0.15 * 0.15))


# --- parameters -------------------------------------------------------------------------------


def test_default_params_are_the_design_values():
    assert DEFAULT.to_dict() == {
        "cart_mass_kg": 1.5,
        "link1_mass_kg": 0.2,
        "link2_mass_kg": 0.15,
        "link1_length_m": 0.4,
        "link2_length_m": 0.3,
        "link1_com_m": 0.2,
        "link2_com_m": 0.15,
        "link1_inertia_kgm2": 0.0081,
        "link2_inertia_kgm2": 0.0034,
        "gravity_mps2": 9.81,
        "cart_friction_nspm": 0.2,
        "joint1_friction_nmsprad": 0.005,
        "joint2_friction_nmsprad": 0.004,
        "max_force_n": 150.0,
    }


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("cart_mass_kg", 0.0, "cart_mass_kg must be > 0, got 0.0"),
        ("link2_mass_kg", -0.1, "link2_mass_kg must be > 0, got -0.1"),
        ("link1_length_m", 0.0, "link1_length_m must be > 0"),
        ("link2_inertia_kgm2", -1.0, "link2_inertia_kgm2 must be > 0"),
        ("link1_com_m", 0.5, r"link1_com_m must be in \(0, link1_length_m=0.4\], got 0.5"),
        ("link2_com_m", 0.0, r"link2_com_m must be in \(0, link2_length_m=0.3\], got 0.0"),
        ("cart_friction_nspm", -0.2, "cart_friction_nspm must be >= 0, got -0.2"),
        ("joint2_friction_nmsprad", -1e-3, "joint2_friction_nmsprad must be >= 0"),
        ("max_force_n", 0.0, "max_force_n must be > 0"),
        ("gravity_mps2", math.inf, "gravity_mps2 must be finite, got inf"),
        ("link1_mass_kg", math.nan, "link1_mass_kg must be finite, got nan"),
    ],
)
def test_invalid_params_are_rejected_naming_the_field_and_the_fix(field, value, message):
    with pytest.raises(ValueError, match=message):
        DIPParams(**{field: value})


def test_non_numeric_params_are_rejected_naming_the_field():
    with pytest.raises(TypeError, match=r"cart_mass_kg must be a real number, got '1\.5'"):
        DIPParams(cart_mass_kg="1.5")
    with pytest.raises(TypeError, match="max_force_n must be a real number, got True"):
        DIPParams(max_force_n=True)


def test_packed_params_are_read_only_and_computed_once():
    packed = DEFAULT.as_array()
    assert packed is DEFAULT.as_array()
    assert packed.dtype == np.float64 and not packed.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        packed[0] = 1.0


def test_params_from_mapping_rejects_an_unknown_key_listing_the_allowed_ones():
    assert DIPParams.from_mapping({"cart_mass_kg": 2.0}) == DEFAULT.replace(cart_mass_kg=2.0)
    with pytest.raises(ValueError, match=r"'cart_mass'.*allowed: cart_mass_kg, link1_mass_kg"):
        DIPParams.from_mapping({"cart_mass": 2.0})
    with pytest.raises(ValueError, match="'mass'"):
        DEFAULT.replace(mass=1.0)


# --- the model registry -----------------------------------------------------------------------


def test_registry_creates_each_model_by_name_with_param_overrides():
    assert {"dip": DIPModel, "cartpole": CartPoleModel, "rotary": RotaryModel,
            "helicopter": HelicopterModel} == MODELS
    model = create_model("dip", {"link1_mass_kg": 0.3}, substeps=2)
    assert isinstance(model, DIPModel) and model.substeps == 2
    assert model.params == DEFAULT.replace(link1_mass_kg=0.3)
    assert isinstance(create_model("cartpole"), CartPoleModel)


def test_registry_rejects_an_unknown_model_listing_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown name 'triple'; built in or installed "
                       r"\(hil.plants entry points\): cartpole, dip, fmu, helicopter, rotary\."):
        create_model("triple")


def test_registry_rejects_an_unknown_param_key_naming_it():
    with pytest.raises(ValueError, match=r"unknown DIPParams parameter.*'pole_mass_kg'"):
        create_model("dip", {"pole_mass_kg": 0.1})


@pytest.mark.parametrize(("substeps", "error"), [(0, ValueError), (2.0, TypeError)])
def test_model_rejects_bad_substeps(substeps, error):
    with pytest.raises(error, match="substeps"):
        DIPModel(substeps=substeps)


def test_model_rejects_params_of_another_model():
    with pytest.raises(TypeError, match="params must be a DIPParams"):
        DIPModel(CartPoleModel().params)


def test_kernels_compute_the_same_interpreted_as_compiled():
    # Runs the kernels' Python source (NUMBA_DISABLE_JIT) in a subprocess: numba-specific
    # semantics cannot hide a difference, and coverage sees the kernel source.
    ref.assert_interpreted_matches_compiled("dip", LARGE_SWING, 30.0)
