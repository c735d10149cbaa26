"""Double inverted pendulum on a cart: full nonlinear dynamics, numba-compiled.

Equations
---------
Lagrangian mechanics of a cart (mass ``m0``) carrying two rigid links in series, with the
link angles *absolute* (each measured from upright, positive when the link tilts toward +x),
following the derivation of A. Bogdanov, "Optimal control of a double inverted pendulum
on a cart", OGI School of Science & Engineering, OHSU, tech. report CSE-04-006 (2004), sec. 2,
generalised here to arbitrary centres of mass and inertias and with viscous friction. With
``q = (x, theta1, theta2)``, link ``i`` of mass ``m_i``, length ``l_i``, centre of mass ``c_i``
from its own pivot and inertia ``I_i`` about that centre of mass, the centres of mass are at

    p1 = (x + c1 sin th1,                 c1 cos th1)
    p2 = (x + l1 sin th1 + c2 sin th2,    l1 cos th1 + c2 cos th2)

and ``T = 1/2 q'^T M(q) q'``, ``V = g (m1 c1 + m2 l1) cos th1 + g m2 c2 cos th2`` (zero at the
pivot height). Euler-Lagrange gives ``M(q) q'' = [u, 0, 0] - bias(q, q')`` with

    M = [[m0+m1+m2,  a cos th1,          b cos th2        ],
         [a cos th1, J1,                 d cos(th1 - th2) ],
         [b cos th2, d cos(th1 - th2),   J2               ]]

    a = m1 c1 + m2 l1,  b = m2 c2,  d = m2 l1 c2,  J1 = m1 c1^2 + m2 l1^2 + I1,  J2 = m2 c2^2 + I2

    bias = [ -a sin th1 th1'^2 - b sin th2 th2'^2 + bc x'                          ,
              d sin(th1 - th2) th2'^2 - g a sin th1 + b1 th1' - b2 (th2' - th1')     ,
             -d sin(th1 - th2) th1'^2 - g b sin th2 + b2 (th2' - th1')              ]

The friction is viscous: ``bc`` on the cart, ``b1`` at joint 1 (torque ``-b1 th1'`` on link 1),
``b2`` at joint 2 on the *relative* rate (``-b2 (th2' - th1')`` on link 2 and the opposite
torque on link 1). The tests check all of this against an independent NumPy reference built
from the link Jacobians and the Christoffel symbols (``tests/hil/dynamics/reference_dynamics.py``).

State
-----

=====  ============  =====  ==========================================================
index  name          unit   meaning
=====  ============  =====  ==========================================================
0      x             m      cart position, + to the right
1      theta1        rad    link 1 from upright, + when it tilts toward +x
2      theta2        rad    link 2 from upright (absolute, not relative to link 1)
3      x_dot         m/s    cart velocity
4      theta1_dot    rad/s  link 1 angular rate
5      theta2_dot    rad/s  link 2 angular rate
=====  ============  =====  ==========================================================

Input: the horizontal force on the cart, N. :func:`rk4_step_kernel` (and so
:meth:`DIPModel.step`) saturates it at +-``max_force_n``; the derivative functions do not.
A non-finite force is not caught here: the plant's safety gates reject non-finite values.

Kernels take the packed parameter vector ``DIPParams().as_array()`` (``p``) and can be called
from Python or from other ``@njit`` code.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from numba import njit

from hil.dynamics.base import ModelKernels, ModelParams, PlantModel

STATE_NAMES = ("x", "theta1", "theta2", "x_dot", "theta1_dot", "theta2_dot")
STATE_UNITS = ("m", "rad", "rad", "m/s", "rad/s", "rad/s")
STATE_SIZE = 6

# Layout of the packed parameter vector (derived constants, computed once per DIPParams).
_P_TOTAL_MASS = 0  # m0 + m1 + m2
_P_A = 1  # m1 c1 + m2 l1
_P_B = 2  # m2 c2
_P_D = 3  # m2 l1 c2
_P_J1 = 4  # m1 c1^2 + m2 l1^2 + I1
_P_J2 = 5  # m2 c2^2 + I2
_P_GA = 6  # g a
_P_GB = 7  # g b
_P_CART_FRICTION = 8
_P_JOINT1_FRICTION = 9
_P_JOINT2_FRICTION = 10
_P_MAX_FORCE = 11
PACKED_SIZE = 12


@dataclasses.dataclass(frozen=True)
class DIPParams(ModelParams):
    """Physical parameters of the double inverted pendulum (SI units, in the field names)."""

    cart_mass_kg: float = 1.5
    link1_mass_kg: float = 0.2
    link2_mass_kg: float = 0.15
    link1_length_m: float = 0.4
    link2_length_m: float = 0.3
    link1_com_m: float = 0.2  # centre of mass, from link 1's own pivot (on the cart)
    link2_com_m: float = 0.15  # centre of mass, from link 2's own pivot (tip of link 1)
    link1_inertia_kgm2: float = 0.0081  # about link 1's centre of mass
    link2_inertia_kgm2: float = 0.0034  # about link 2's centre of mass
    gravity_mps2: float = 9.81
    cart_friction_nspm: float = 0.2
    joint1_friction_nmsprad: float = 0.005
    joint2_friction_nmsprad: float = 0.004  # on the relative rate theta2_dot - theta1_dot
    max_force_n: float = 150.0

    def _validate(self) -> None:
        self._require_positive(
            "cart_mass_kg",
            "link1_mass_kg",
            "link2_mass_kg",
            "link1_length_m",
            "link2_length_m",
            "link1_inertia_kgm2",
            "link2_inertia_kgm2",
            "max_force_n",
        )
        self._require_com_on_link("link1_com_m", "link1_length_m")
        self._require_com_on_link("link2_com_m", "link2_length_m")
        self._require_nonnegative(
            "gravity_mps2",
            "cart_friction_nspm",
            "joint1_friction_nmsprad",
            "joint2_friction_nmsprad",
        )

    def _pack(self) -> tuple[float, ...]:
        m1, m2 = self.link1_mass_kg, self.link2_mass_kg
        l1, c1, c2 = self.link1_length_m, self.link1_com_m, self.link2_com_m
        a = m1 * c1 + m2 * l1
        b = m2 * c2
        g = self.gravity_mps2
        return (
            self.cart_mass_kg + m1 + m2,
            a,
            b,
            m2 * l1 * c2,
            m1 * c1 * c1 + m2 * l1 * l1 + self.link1_inertia_kgm2,
            m2 * c2 * c2 + self.link2_inertia_kgm2,
            g * a,
            g * b,
            self.cart_friction_nspm,
            self.joint1_friction_nmsprad,
            self.joint2_friction_nmsprad,
            self.max_force_n,
        )


# --- compiled kernels -------------------------------------------------------------------------
# The private helpers work on scalars and tuples, so the integrator allocates nothing.


@njit(cache=True)
def _check_args(p, state, out):
    """Bounds for the unchecked indexing below: numba does not check them."""
    if p.shape[0] != PACKED_SIZE:
        raise ValueError("p must be DIPParams().as_array() (12 packed constants)")
    if state.shape[0] != STATE_SIZE or out.shape[0] != STATE_SIZE:
        raise ValueError("state and out must have 6 elements")


@njit(cache=True)
def _mass_entries(c1, c2, c12, p):
    """Upper triangle of M: (m00, m01, m02, m11, m12, m22)."""
    return (
        p[_P_TOTAL_MASS],
        p[_P_A] * c1,
        p[_P_B] * c2,
        p[_P_J1],
        p[_P_D] * c12,
        p[_P_J2],
    )


@njit(cache=True)
def _bias_entries(s1, s2, s12, x_dot, w1, w2, p):
    """Coriolis/centrifugal + gravity + friction generalized forces, left-hand side."""
    relative = p[_P_JOINT2_FRICTION] * (w2 - w1)
    return (
        -p[_P_A] * s1 * w1 * w1 - p[_P_B] * s2 * w2 * w2 + p[_P_CART_FRICTION] * x_dot,
        p[_P_D] * s12 * w2 * w2 - p[_P_GA] * s1 + p[_P_JOINT1_FRICTION] * w1 - relative,
        -p[_P_D] * s12 * w1 * w1 - p[_P_GB] * s2 + relative,
    )


@njit(cache=True)
def _accelerations(th1, th2, x_dot, w1, w2, force, p):
    """(x'', th1'', th2''): M q'' = [force, 0, 0] - bias, solved by the symmetric adjugate."""
    s1, c1 = math.sin(th1), math.cos(th1)
    s2, c2 = math.sin(th2), math.cos(th2)
    s12 = s1 * c2 - c1 * s2
    c12 = c1 * c2 + s1 * s2
    m00, m01, m02, m11, m12, m22 = _mass_entries(c1, c2, c12, p)
    h0, h1, h2 = _bias_entries(s1, s2, s12, x_dot, w1, w2, p)
    r0, r1, r2 = force - h0, -h1, -h2
    a00 = m11 * m22 - m12 * m12
    a01 = m02 * m12 - m01 * m22
    a02 = m01 * m12 - m02 * m11
    a11 = m00 * m22 - m02 * m02
    a12 = m01 * m02 - m00 * m12
    a22 = m00 * m11 - m01 * m01
    inv_det = 1.0 / (m00 * a00 + m01 * a01 + m02 * a02)
    return (
        (a00 * r0 + a01 * r1 + a02 * r2) * inv_det,
        (a01 * r0 + a11 * r1 + a12 * r2) * inv_det,
        (a02 * r0 + a12 * r1 + a22 * r2) * inv_det,
    )


@njit(cache=True)
def mass_matrix(state, p):
    """M(q), (3, 3), from the positions ``state[1]``, ``state[2]`` only."""
    _check_args(p, state, state)
    th1, th2 = state[1], state[2]
    c1, c2 = math.cos(th1), math.cos(th2)
    c12 = math.cos(th1 - th2)
    m00, m01, m02, m11, m12, m22 = _mass_entries(c1, c2, c12, p)
    m = np.empty((3, 3))
    m[0, 0], m[0, 1], m[0, 2] = m00, m01, m02
    m[1, 0], m[1, 1], m[1, 2] = m01, m11, m12
    m[2, 0], m[2, 1], m[2, 2] = m02, m12, m22
    return m


@njit(cache=True)
def bias_forces(state, p):
    """bias(q, q'), (3,): Coriolis/centrifugal + gravity + friction, so M q'' = [u,0,0] - bias."""
    _check_args(p, state, state)
    th1, th2 = state[1], state[2]
    h = _bias_entries(
        math.sin(th1), math.sin(th2), math.sin(th1 - th2), state[3], state[4], state[5], p
    )
    out = np.empty(3)
    out[0], out[1], out[2] = h
    return out


@njit(cache=True)
def derivatives_kernel(state, force, p, out):
    """Write d state / dt at ``state`` under ``force`` (N, not saturated) into ``out``."""
    _check_args(p, state, out)
    x_dot, w1, w2 = state[3], state[4], state[5]
    acc = _accelerations(state[1], state[2], x_dot, w1, w2, force, p)
    out[0], out[1], out[2] = x_dot, w1, w2
    out[3], out[4], out[5] = acc


@njit(cache=True)
def _axpy(y, h, k):
    return (y[0] + h * k[0], y[1] + h * k[1], y[2] + h * k[2])


@njit(cache=True)
def _rk4_combine(y, h, k1, k2, k3, k4):
    w = h / 6.0
    return (
        y[0] + w * (k1[0] + 2.0 * (k2[0] + k3[0]) + k4[0]),
        y[1] + w * (k1[1] + 2.0 * (k2[1] + k3[1]) + k4[1]),
        y[2] + w * (k1[2] + 2.0 * (k2[2] + k3[2]) + k4[2]),
    )


@njit(cache=True)
def _acc(q, v, force, p):
    return _accelerations(q[1], q[2], v[0], v[1], v[2], force, p)


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
    h = dt_s / substeps
    half = 0.5 * h
    q = (state[0], state[1], state[2])
    v = (state[3], state[4], state[5])
    for _ in range(substeps):
        a1 = _acc(q, v, u, p)
        v2 = _axpy(v, half, a1)
        a2 = _acc(_axpy(q, half, v), v2, u, p)
        v3 = _axpy(v, half, a2)
        a3 = _acc(_axpy(q, half, v2), v3, u, p)
        v4 = _axpy(v, h, a3)
        a4 = _acc(_axpy(q, h, v3), v4, u, p)
        q = _rk4_combine(q, h, v, v2, v3, v4)
        v = _rk4_combine(v, h, a1, a2, a3, a4)
    out[0], out[1], out[2] = q
    out[3], out[4], out[5] = v


@njit(cache=True)
def energy_kernel(state, p):
    """Kinetic + potential energy, J; potential zero at the pivot (cart) height."""
    _check_args(p, state, state)
    th1, th2 = state[1], state[2]
    c1, c2 = math.cos(th1), math.cos(th2)
    m00, m01, m02, m11, m12, m22 = _mass_entries(c1, c2, math.cos(th1 - th2), p)
    v0, v1, v2 = state[3], state[4], state[5]
    kinetic = 0.5 * (m00 * v0 * v0 + m11 * v1 * v1 + m22 * v2 * v2) + (
        m01 * v0 * v1 + m02 * v0 * v2 + m12 * v1 * v2
    )
    return kinetic + p[_P_GA] * c1 + p[_P_GB] * c2


class DIPModel(PlantModel):
    """The double inverted pendulum as a simulated plant (see the module docstring)."""

    name = "dip"
    state_names = STATE_NAMES
    state_units = STATE_UNITS
    params_type = DIPParams
    kernels = ModelKernels(
        step=rk4_step_kernel, derivatives=derivatives_kernel, energy=energy_kernel)

    params: DIPParams


# Any array-like state; the default parameters unless given (see PlantModel.derivatives_at).
derivatives = DIPModel.derivatives_at
total_energy = DIPModel.energy_at
