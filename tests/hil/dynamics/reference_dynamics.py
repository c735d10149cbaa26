"""Plain NumPy reference dynamics for the plant models, written independently of the kernels.

Nothing here is copied from the kernels' closed forms. Each model is described only by its
rigid bodies: the centre-of-mass position of each body as a function of the generalized
coordinates q, its analytic linear-velocity Jacobian Jv = d p / d q and the derivatives of
that Jacobian d Jv / d q_k, its angular-velocity Jacobian Jw (constant: the angles are
absolute), and the friction elements as directions in q'. From these, generically:

    M(q)       = sum_i m_i Jv_i^T Jv_i + I_i Jw_i^T Jw_i
    dM/dq_k    = sum_i m_i (dJv_i/dq_k^T Jv_i + Jv_i^T dJv_i/dq_k)
    C(q,q') q' = sum_jk Gamma_ijk q'_j q'_k,
                 Gamma_ijk = 1/2 (dM_ij/dq_k + dM_ik/dq_j - dM_jk/dq_i)   (Christoffel, 1st kind)
    G(q)       = dV/dq = sum_i m_i g (d y_i / d q)                       (V = sum m_i g y_i)
    Q_friction = -sum_e b_e (a_e . q') a_e                              (viscous element e)
    q''        = solve(M, B u - C q' - G + Q_friction),   B = e_0 (force on the cart)

solved with ``np.linalg.solve``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hil.dynamics.cartpole import CartPoleParams
from hil.dynamics.dip import DIPParams


@dataclass(frozen=True)
class Body:
    """A rigid body in the vertical plane (x right, y up)."""

    mass: float
    inertia: float  # about its centre of mass
    position: Callable[[np.ndarray], np.ndarray]  # q -> (2,)
    jacobian: Callable[[np.ndarray], np.ndarray]  # q -> (2, n) = d position / d q
    jacobian_dq: Callable[[np.ndarray], np.ndarray]  # q -> (n, 2, n), [k] = d jacobian / d q_k
    angular_jacobian: np.ndarray  # (n,), the body's angular rate is this . q'


@dataclass(frozen=True)
class Mechanism:
    """Bodies, gravity and viscous friction elements (coefficient, direction in q')."""

    bodies: tuple[Body, ...]
    gravity: float
    friction: tuple[tuple[float, np.ndarray], ...]

    @property
    def dof(self) -> int:
        return self.bodies[0].angular_jacobian.shape[0]


def mass_matrix(mech: Mechanism, q: np.ndarray) -> np.ndarray:
    n = mech.dof
    m = np.zeros((n, n))
    for body in mech.bodies:
        jv = body.jacobian(q)
        jw = body.angular_jacobian[np.newaxis, :]
        m += body.mass * jv.T @ jv + body.inertia * jw.T @ jw
    return m


def mass_matrix_dq(mech: Mechanism, q: np.ndarray) -> np.ndarray:
    """(n, n, n): [k] = d M / d q_k."""
    n = mech.dof
    dm = np.zeros((n, n, n))
    for body in mech.bodies:
        jv = body.jacobian(q)
        djv = body.jacobian_dq(q)
        for k in range(n):
            dm[k] += body.mass * (djv[k].T @ jv + jv.T @ djv[k])
    return dm


def coriolis(mech: Mechanism, q: np.ndarray, qd: np.ndarray) -> np.ndarray:
    """C(q, q') q' from the Christoffel symbols of the first kind."""
    d = mass_matrix_dq(mech, q)  # d[k, i, j] = dM_ij / dq_k
    gamma = 0.5 * (np.einsum("kij->ijk", d) + np.einsum("jik->ijk", d) - d)
    return np.einsum("ijk,j,k->i", gamma, qd, qd)


def gravity(mech: Mechanism, q: np.ndarray) -> np.ndarray:
    """dV/dq with V = sum m g y: the vertical rows of the Jacobians."""
    return sum(body.mass * mech.gravity * body.jacobian(q)[1] for body in mech.bodies)


def friction(mech: Mechanism, qd: np.ndarray) -> np.ndarray:
    return -sum(b * (a @ qd) * a for b, a in mech.friction)


def bias(mech: Mechanism, q: np.ndarray, qd: np.ndarray) -> np.ndarray:
    """C q' + G - Q_friction: what M q'' = B u - bias leaves on the right."""
    return coriolis(mech, q, qd) + gravity(mech, q) - friction(mech, qd)


def accelerations(mech: Mechanism, q: np.ndarray, qd: np.ndarray, force: float) -> np.ndarray:
    rhs = -bias(mech, q, qd)
    rhs[0] += force
    return np.linalg.solve(mass_matrix(mech, q), rhs)


def energy(mech: Mechanism, state: np.ndarray) -> float:
    n = mech.dof
    q, qd = state[:n], state[n:]
    kinetic = 0.5 * qd @ mass_matrix(mech, q) @ qd
    potential = sum(body.mass * mech.gravity * body.position(q)[1] for body in mech.bodies)
    return float(kinetic + potential)


def state_derivatives(mech: Mechanism, state: np.ndarray, force: float) -> np.ndarray:
    n = mech.dof
    q, qd = state[:n], state[n:]
    return np.concatenate([qd, accelerations(mech, q, qd, force)])


def rk4_step(
    deriv: Callable[[np.ndarray, float], np.ndarray],
    state: np.ndarray,
    force: float,
    dt_s: float,
    substeps: int,
) -> np.ndarray:
    """Textbook RK4 on the full state vector, force held constant (no saturation)."""
    h = dt_s / substeps
    y = np.array(state, dtype=float)
    for _ in range(substeps):
        k1 = deriv(y, force)
        k2 = deriv(y + 0.5 * h * k1, force)
        k3 = deriv(y + 0.5 * h * k2, force)
        k4 = deriv(y + h * k3, force)
        y = y + h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
    return y


def step(mech: Mechanism, state: np.ndarray, force: float, dt_s: float, substeps: int):
    """The reference plant step: RK4 of :func:`state_derivatives`."""
    return rk4_step(lambda s, u: state_derivatives(mech, s, u), state, force, dt_s, substeps)


# --- the two models ---------------------------------------------------------------------------


def _cart(mass: float, n: int) -> Body:
    def jacobian(q):
        jv = np.zeros((2, n))
        jv[0, 0] = 1.0
        return jv

    return Body(
        mass=mass,
        inertia=0.0,
        position=lambda q: np.array([q[0], 0.0]),
        jacobian=jacobian,
        jacobian_dq=lambda q: np.zeros((n, 2, n)),
        angular_jacobian=np.zeros(n),
    )


def _unit(n: int, *entries: tuple[int, float]) -> np.ndarray:
    a = np.zeros(n)
    for i, value in entries:
        a[i] = value
    return a


def dip_mechanism(p: DIPParams) -> Mechanism:
    """q = (x, th1, th2), absolute angles from upright, + toward +x."""
    l1, c1, c2 = p.link1_length_m, p.link1_com_m, p.link2_com_m

    def link1_jacobian(q):
        return np.array([[1.0, c1 * np.cos(q[1]), 0.0], [0.0, -c1 * np.sin(q[1]), 0.0]])

    def link1_jacobian_dq(q):
        d = np.zeros((3, 2, 3))
        d[1] = [[0.0, -c1 * np.sin(q[1]), 0.0], [0.0, -c1 * np.cos(q[1]), 0.0]]
        return d

    def link2_position(q):
        return np.array(
            [
                q[0] + l1 * np.sin(q[1]) + c2 * np.sin(q[2]),
                l1 * np.cos(q[1]) + c2 * np.cos(q[2]),
            ]
        )

    def link2_jacobian(q):
        return np.array(
            [
                [1.0, l1 * np.cos(q[1]), c2 * np.cos(q[2])],
                [0.0, -l1 * np.sin(q[1]), -c2 * np.sin(q[2])],
            ]
        )

    def link2_jacobian_dq(q):
        d = np.zeros((3, 2, 3))
        d[1] = [[0.0, -l1 * np.sin(q[1]), 0.0], [0.0, -l1 * np.cos(q[1]), 0.0]]
        d[2] = [[0.0, 0.0, -c2 * np.sin(q[2])], [0.0, 0.0, -c2 * np.cos(q[2])]]
        return d

    link1 = Body(
        mass=p.link1_mass_kg,
        inertia=p.link1_inertia_kgm2,
        position=lambda q: np.array([q[0] + c1 * np.sin(q[1]), c1 * np.cos(q[1])]),
        jacobian=link1_jacobian,
        jacobian_dq=link1_jacobian_dq,
        angular_jacobian=_unit(3, (1, 1.0)),
    )
    link2 = Body(
        mass=p.link2_mass_kg,
        inertia=p.link2_inertia_kgm2,
        position=link2_position,
        jacobian=link2_jacobian,
        jacobian_dq=link2_jacobian_dq,
        angular_jacobian=_unit(3, (2, 1.0)),
    )
    return Mechanism(
        bodies=(_cart(p.cart_mass_kg, 3), link1, link2),
        gravity=p.gravity_mps2,
        friction=(
            (p.cart_friction_nspm, _unit(3, (0, 1.0))),
            (p.joint1_friction_nmsprad, _unit(3, (1, 1.0))),
            # Joint 2 resists the relative rate th2' - th1'.
            (p.joint2_friction_nmsprad, _unit(3, (1, -1.0), (2, 1.0))),
        ),
    )


def cartpole_mechanism(p: CartPoleParams) -> Mechanism:
    """q = (x, th), th from upright, + toward +x."""
    c = p.pole_com_m

    def pole_jacobian_dq(q):
        d = np.zeros((2, 2, 2))
        d[1] = [[0.0, -c * np.sin(q[1])], [0.0, -c * np.cos(q[1])]]
        return d

    pole = Body(
        mass=p.pole_mass_kg,
        inertia=p.pole_inertia_kgm2,
        position=lambda q: np.array([q[0] + c * np.sin(q[1]), c * np.cos(q[1])]),
        jacobian=lambda q: np.array([[1.0, c * np.cos(q[1])], [0.0, -c * np.sin(q[1])]]),
        jacobian_dq=pole_jacobian_dq,
        angular_jacobian=_unit(2, (1, 1.0)),
    )
    return Mechanism(
        bodies=(_cart(p.cart_mass_kg, 2), pole),
        gravity=p.gravity_mps2,
        friction=(
            (p.cart_friction_nspm, _unit(2, (0, 1.0))),
            (p.joint_friction_nmsprad, _unit(2, (1, 1.0))),
        ),
    )


# --- reference-side numerics shared by the model tests ----------------------------------------


def assert_matches_reference(actual: np.ndarray, expected: np.ndarray, tol: float = 1e-12) -> None:
    """Agreement to ``tol`` relative to the vector's magnitude (or absolutely, below 1)."""
    scale = max(1.0, float(np.max(np.abs(expected))))
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * scale)


def finite_difference(f: Callable[[np.ndarray], np.ndarray], q, eps: float = 1e-6) -> np.ndarray:
    """(n, *f.shape): [k] = d f / d q_k by central differences."""
    q = np.asarray(q, dtype=float)
    rows = []
    for k in range(q.size):
        dq = np.zeros(q.size)
        dq[k] = eps
        rows.append((f(q + dq) - f(q - dq)) / (2.0 * eps))
    return np.array(rows)


def linearisation_eigenvalues(model, state) -> np.ndarray:
    """Eigenvalues of d f / d state at ``state`` with zero force."""
    jacobian = finite_difference(lambda s: model.derivatives(s, 0.0), state).T
    return np.linalg.eigvals(jacobian)


def simulate(model, state, forces, dt_s: float = 1e-3) -> np.ndarray:
    """States (len(forces) + 1, n) from ``model.step`` with one force per step."""
    states = np.empty((len(forces) + 1, len(state)))
    states[0] = state
    for k, force in enumerate(forces):
        model.step(states[k], float(force), dt_s, states[k + 1])
    return states


def energies(model, states: np.ndarray) -> np.ndarray:
    return np.array([model.energy(s) for s in states])


def energy_drift(model, state, steps: int) -> float:
    """Largest |E - E0| / |E0| over ``steps`` unforced 1 ms steps."""
    energy = energies(model, simulate(model, state, np.zeros(steps)))
    return float(np.max(np.abs(energy - energy[0])) / abs(energy[0]))


def energy_steps(model, state, steps: int) -> np.ndarray:
    """The energy change of each of ``steps`` unforced 1 ms steps."""
    return np.diff(energies(model, simulate(model, state, np.zeros(steps))))


def work_energy_residual(model, state, force: np.ndarray) -> tuple[float, float]:
    """(largest |E(t) - E(0) - W(t)|, largest |W(t)|) along a forced run of 1 ms steps.

    The force is constant over each step, so its work there is exactly force * dx.
    """
    trajectory = simulate(model, state, force)
    work = np.cumsum(force * np.diff(trajectory[:, 0]))
    energy = energies(model, trajectory)
    return float(np.max(np.abs(energy[1:] - energy[0] - work))), float(np.max(np.abs(work)))


def swing_decay(model, state, hanging, steps: int) -> float:
    """Largest angle from ``hanging`` in the last second over that in the first second."""
    n = len(state) // 2
    swing = np.abs(simulate(model, state, np.zeros(steps))[:, 1:n] - hanging[1:n])
    return float(np.max(swing[-1000:]) / np.max(swing[:1000]))


def kernel_outputs(model_name: str, state: list[float], force: float) -> dict[str, object]:
    """Every kernel of a model's module on one input (and its argument checks), as plain data.

    Run in a process with ``NUMBA_DISABLE_JIT=1`` (see :func:`interpreted_kernel_outputs`) this
    executes the kernels' Python source; in this process, their compiled form.
    """
    from hil.dynamics import MODELS

    model = MODELS[model_name]()
    kernels = sys.modules[type(model).__module__]
    p, x = model.params.as_array(), np.array(state, dtype=float)
    out = np.empty_like(x)
    results: dict[str, object] = {}
    kernels.derivatives_kernel(x, force, p, out)
    results["derivatives"] = out.tolist()
    for label, step_force in (("step", force), ("step_saturated", 1e9)):
        kernels.rk4_step_kernel(x, step_force, 0.01, 3, p, out)
        results[label] = out.tolist()
    results["mass_matrix"] = kernels.mass_matrix(x, p).ravel().tolist()
    results["bias_forces"] = kernels.bias_forces(x, p).tolist()
    results["energy"] = [float(kernels.energy_kernel(x, p))]
    bad_calls = {
        "short_state": lambda: kernels.rk4_step_kernel(x[:-1], force, 0.01, 3, p, out),
        "short_params": lambda: kernels.derivatives_kernel(x, force, p[:-1], out),
        "zero_dt": lambda: kernels.rk4_step_kernel(x, force, 0.0, 3, p, out),
    }
    for label, call in bad_calls.items():
        try:
            call()
        except ValueError as exc:
            results[label] = str(exc)
    return results


def assert_interpreted_matches_compiled(model_name: str, state, force: float) -> None:
    compiled = kernel_outputs(model_name, list(state), force)
    interpreted = interpreted_kernel_outputs(model_name, list(state), force)
    assert compiled.keys() == interpreted.keys()
    for key, value in compiled.items():
        if isinstance(value, str):
            assert interpreted[key] == value, key
        else:
            assert_matches_reference(np.array(value), np.array(interpreted[key]))


def interpreted_kernel_outputs(model_name: str, state: list[float], force: float) -> dict:
    """:func:`kernel_outputs` in a fresh interpreter with numba's JIT switched off."""
    script = (
        "import json, sys; import reference_dynamics as ref; "
        "print(json.dumps(ref.kernel_outputs(sys.argv[1], json.loads(sys.argv[2]), "
        "float(sys.argv[3]))))"
    )
    env = {
        **os.environ,
        "NUMBA_DISABLE_JIT": "1",
        "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), *sys.path]),
    }
    result = subprocess.run(
        [sys.executable, "-c", script, model_name, json.dumps(list(state)), repr(force)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout)
