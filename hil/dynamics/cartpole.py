"""Single inverted pendulum on a cart (the classic lab rig): full nonlinear dynamics, numba.

Equations
---------
The cart-pole of A. G. Barto, R. S. Sutton, C. W. Anderson, "Neuronlike adaptive elements that
can solve difficult learning control problems", IEEE Trans. SMC 13(5), 1983 (equations derived
carefully in R. V. Florian, "Correct equations for the dynamics of the cart-pole system",
2007), written here in Lagrangian form for a rigid pole with its own inertia and with viscous
rather than Coulomb friction. With ``q = (x, theta)``, the cart of mass ``mc``,
the pole of mass ``m``, centre of mass ``c`` from the pivot and inertia ``I`` about its centre
of mass, the centre of mass is at ``(x + c sin th, c cos th)``, ``V = m g c cos th`` (zero at
the pivot height) and ``M(q) q'' = [u, 0] - bias(q, q')`` with

    M    = [[mc + m,       m c cos th ],
            [m c cos th,   m c^2 + I  ]]

    bias = [ -m c sin th th'^2 + bc x'   ,
             -m g c sin th + bp th'       ]

``bc`` is the cart's viscous friction, ``bp`` the joint's (torque ``-bp th'`` on the pole).
The tests check this against an independent NumPy reference built from the pole's Jacobian
(``tests/hil/dynamics/reference_dynamics.py``).

State
-----

=====  ==========  =====  =====================================================
index  name        unit   meaning
=====  ==========  =====  =====================================================
0      x           m      cart position, + to the right
1      theta       rad    pole from upright, + when it tilts toward +x
2      x_dot       m/s    cart velocity
3      theta_dot   rad/s  pole angular rate
=====  ==========  =====  =====================================================

Input: the horizontal force on the cart, N, saturated at +-``max_force_n`` by
:func:`rk4_step_kernel` (and so :meth:`CartPoleModel.step`) but not by the derivative functions.
"""

from __future__ import annotations

import dataclasses
import math
from types import MappingProxyType

import numpy as np
from numba import njit

from hil.dynamics.base import ModelKernels, ModelParams, PlantModel
from hil.dynamics.rk4 import rk4_two_dof

STATE_NAMES = ("x", "theta", "x_dot", "theta_dot")
STATE_UNITS = ("m", "rad", "m/s", "rad/s")
STATE_SIZE = 4

# Layout of the packed parameter vector (derived constants, computed once per CartPoleParams).
_P_TOTAL_MASS = 0  # mc + m
_P_A = 1  # m c
_P_J = 2  # m c^2 + I
_P_GA = 3  # g m c
_P_CART_FRICTION = 4
_P_JOINT_FRICTION = 5
_P_MAX_FORCE = 6
PACKED_SIZE = 7


@dataclasses.dataclass(frozen=True)
class CartPoleParams(ModelParams):
    """Physical parameters of the cart-pole (SI units, in the field names).

    The default inertia is that of a uniform 0.1 kg, 0.5 m rod (m l^2 / 12); it is a plain
    default, not recomputed when the mass or length is changed.
    """

    cart_mass_kg: float = 1.0
    pole_mass_kg: float = 0.1
    pole_length_m: float = 0.5
    pole_com_m: float = 0.25  # centre of mass, from the pivot on the cart
    pole_inertia_kgm2: float = 0.1 * 0.5**2 / 12.0  # about the centre of mass
    gravity_mps2: float = 9.81
    cart_friction_nspm: float = 0.1
    joint_friction_nmsprad: float = 0.001
    max_force_n: float = 20.0

    def _validate(self) -> None:
        self._require_positive(
            "cart_mass_kg", "pole_mass_kg", "pole_length_m", "pole_inertia_kgm2", "max_force_n"
        )
        self._require_com_on_link("pole_com_m", "pole_length_m")
        self._require_nonnegative("gravity_mps2", "cart_friction_nspm", "joint_friction_nmsprad")

    def _pack(self) -> tuple[float, ...]:
        m, c = self.pole_mass_kg, self.pole_com_m
        return (
            self.cart_mass_kg + m,
            m * c,
            m * c * c + self.pole_inertia_kgm2,
            self.gravity_mps2 * m * c,
            self.cart_friction_nspm,
            self.joint_friction_nmsprad,
            self.max_force_n,
        )


# --- compiled kernels -------------------------------------------------------------------------


@njit(cache=True)
def _check_args(p, state, out):
    """Bounds for the unchecked indexing below: numba does not check them."""
    if p.shape[0] != PACKED_SIZE:
        raise ValueError("p must be CartPoleParams().as_array() (7 packed constants)")
    if state.shape[0] != STATE_SIZE or out.shape[0] != STATE_SIZE:
        raise ValueError("state and out must have 4 elements")


@njit(cache=True)
def _bias_entries(s, x_dot, w, p):
    return (
        -p[_P_A] * s * w * w + p[_P_CART_FRICTION] * x_dot,
        -p[_P_GA] * s + p[_P_JOINT_FRICTION] * w,
    )


@njit(cache=True)
def _accelerations(x, th, x_dot, w, force, p):
    """(x'', th'') (x unused): the 2x2 system M q'' = [force, 0] - bias by Cramer's rule."""
    s, c = math.sin(th), math.cos(th)
    m00, m01, m11 = p[_P_TOTAL_MASS], p[_P_A] * c, p[_P_J]
    h0, h1 = _bias_entries(s, x_dot, w, p)
    r0, r1 = force - h0, -h1
    inv_det = 1.0 / (m00 * m11 - m01 * m01)
    return ((m11 * r0 - m01 * r1) * inv_det, (m00 * r1 - m01 * r0) * inv_det)


_rk4 = rk4_two_dof(_accelerations, "cartpole")


@njit(cache=True)
def mass_matrix(state, p):
    """M(q), (2, 2), from the position ``state[1]`` only."""
    _check_args(p, state, state)
    m01 = p[_P_A] * math.cos(state[1])
    m = np.empty((2, 2))
    m[0, 0], m[0, 1] = p[_P_TOTAL_MASS], m01
    m[1, 0], m[1, 1] = m01, p[_P_J]
    return m


@njit(cache=True)
def bias_forces(state, p):
    """bias(q, q'), (2,): Coriolis/centrifugal + gravity + friction, so M q'' = [u,0] - bias."""
    _check_args(p, state, state)
    out = np.empty(2)
    out[0], out[1] = _bias_entries(math.sin(state[1]), state[2], state[3], p)
    return out


@njit(cache=True)
def derivatives_kernel(state, force, p, out):
    """Write d state / dt at ``state`` under ``force`` (N, not saturated) into ``out``."""
    _check_args(p, state, out)
    x_dot, w = state[2], state[3]
    out[2], out[3] = _accelerations(state[0], state[1], x_dot, w, force, p)
    out[0], out[1] = x_dot, w


@njit(cache=True)
def rk4_step_kernel(state, force, dt_s, substeps, p, out):
    """Advance ``state`` by ``dt_s``: ``substeps`` classic RK4 steps, force held constant.

    The force is saturated at +-max_force_n. ``out`` may be ``state``. No heap allocation.
    """
    _check_args(p, state, out)
    if not dt_s > 0.0 or substeps < 1:
        raise ValueError("dt_s must be > 0 and substeps >= 1")
    limit = p[_P_MAX_FORCE]
    u = min(max(force, -limit), limit)
    _rk4(state, u, dt_s, substeps, p, out)


@njit(cache=True)
def energy_kernel(state, p):
    """Kinetic + potential energy, J; potential zero at the pivot (cart) height."""
    _check_args(p, state, state)
    c = math.cos(state[1])
    v, w = state[2], state[3]
    kinetic = 0.5 * (p[_P_TOTAL_MASS] * v * v + p[_P_J] * w * w) + p[_P_A] * c * v * w
    return kinetic + p[_P_GA] * c


class CartPoleModel(PlantModel):
    """The cart-pole as a simulated plant (see the module docstring)."""

    name = "cartpole"
    state_names = STATE_NAMES
    state_units = STATE_UNITS
    params_type = CartPoleParams
    kernels = ModelKernels(
        step=rk4_step_kernel, derivatives=derivatives_kernel, energy=energy_kernel)
    # `plant.initial_state: hanging` (a swing-up's start) or `upright`, at rest.
    initial_states = MappingProxyType({
        "upright": (0.0, 0.0, 0.0, 0.0), "hanging": (0.0, math.pi, 0.0, 0.0)})

    params: CartPoleParams


# Any array-like state; the default parameters unless given (see PlantModel.derivatives_at).
derivatives = CartPoleModel.derivatives_at
total_energy = CartPoleModel.energy_at
