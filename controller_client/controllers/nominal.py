"""What the sliding-mode laws share: the surface, its dynamics on the nominal model, helpers.

Every sliding-mode law here uses one surface on the full state (absolute angles, docs/design.md
layout), with the two links entering with opposite signs and a cart term for recentring:

    sigma = k1 (theta1_dot + lambda1 theta1) - k2 (theta2_dot + lambda2 theta2)
            - kc (x_dot + lambdac x)

Why this shape: with absolute angles a same-sign surface has unstable zero dynamics for
every positive gain set, and an angle-only surface leaves a double zero eigenvalue (the cart
drifts at constant speed: 0.25 m/s from theta1 = 0.1). With the cart term all five
zero-dynamics eigenvalues lie in the left half plane; `tests/controller_client/
test_zero_dynamics.py` computes them for every law's defaults.

On the nominal model M(q) q'' = B u - bias(q, q') with B = [1, 0, 0], L = [-kc, k1, -k2]:

    sigma_dot = b u - a,   b = L M^-1 B,   a = L M^-1 bias - (Lambda q_dot)

so the equivalent control is u_eq = a / b. The laws add a term that drives sigma to zero.
M^-1 B and M^-1 bias come from the model's own public derivative kernel (q'' at u = 0 and
u = 1; q'' is affine in u), into scratch rows held by the law, so nothing is allocated but
the 3 x 3 mass matrix for its condition number (a stability figure).

The kernels use numba's on-disk cache, keyed on every source file of hil/dynamics and
controller_client as well as their own (hil/dynamics/jit.py): a change to the plant model
recompiles the laws that inline it.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from hil.dynamics.dip import derivatives_kernel, mass_matrix

# Slots of every law's persistent `mem` vector (law-specific slots start at MEM_FIRST_FREE).
MEM_SIGMA = 0
MEM_CONDITION = 1
MEM_FIRST_FREE = 2
SCRATCH_ROWS = 2  # derivative rows for q'' at u = 0 and u = 1

# The surface every SMC uses by default: (k1, k2, lambda1, lambda2) and the cart term
# (kc, lambdac). Zero dynamics at -8.2, -6.3, -2.0 +/- 1.1j, -0.88 /s.
DEFAULT_SURFACE = (2.0, 16.0, 42.0, 7.2)
CART_OPTIONS = {"cart_gain": 4.0, "cart_lambda": 0.45}


@njit(nogil=True, cache=True)
def saturate(v: float, limit: float) -> float:
    if v > limit:
        return limit
    if v < -limit:
        return -limit
    return v


@njit(nogil=True, cache=True)
def sym3_condition(m: np.ndarray) -> float:
    """2-norm condition number of a symmetric positive-definite 3x3 matrix (closed form).

    Eigenvalues by the trigonometric method (O. K. Smith, CACM 4(4), 1961).
    """
    p1 = m[0, 1] ** 2 + m[0, 2] ** 2 + m[1, 2] ** 2
    q = (m[0, 0] + m[1, 1] + m[2, 2]) / 3.0
    d0, d1, d2 = m[0, 0] - q, m[1, 1] - q, m[2, 2] - q
    p2 = d0 * d0 + d1 * d1 + d2 * d2 + 2.0 * p1
    if p2 <= 0.0:
        return 1.0
    p = math.sqrt(p2 / 6.0)
    b00, b11, b22 = d0 / p, d1 / p, d2 / p
    b01, b02, b12 = m[0, 1] / p, m[0, 2] / p, m[1, 2] / p
    r = 0.5 * (b00 * (b11 * b22 - b12 * b12) - b01 * (b01 * b22 - b12 * b02)
               + b02 * (b01 * b12 - b11 * b02))
    r = min(max(r, -1.0), 1.0)
    phi = math.acos(r) / 3.0
    big = q + 2.0 * p * math.cos(phi)
    small = q + 2.0 * p * math.cos(phi + 2.0 * math.pi / 3.0)
    return big / small


@njit(nogil=True, cache=True)
def surface(state: np.ndarray, k1: float, k2: float, l1: float, l2: float, kc: float,
            lc: float, p: np.ndarray, scratch: np.ndarray, mem: np.ndarray
            ) -> tuple[float, float, float]:
    """(sigma, a, b) at `state` with sigma_dot = b u - a; stores sigma and cond(M) in mem."""
    x, th1, th2 = state[0], state[1], state[2]
    xd, th1d, th2d = state[3], state[4], state[5]
    sigma = k1 * (th1d + l1 * th1) - k2 * (th2d + l2 * th2) - kc * (xd + lc * x)
    d0 = scratch[0]
    d1 = scratch[1]
    derivatives_kernel(state, 0.0, p, d0)
    derivatives_kernel(state, 1.0, p, d1)
    # q''(0) = -M^-1 bias, q''(1) - q''(0) = M^-1 B
    b = -kc * (d1[3] - d0[3]) + k1 * (d1[4] - d0[4]) - k2 * (d1[5] - d0[5])
    a = kc * d0[3] - k1 * d0[4] + k2 * d0[5] - (k1 * l1 * th1d - k2 * l2 * th2d - kc * lc * xd)
    mem[MEM_SIGMA] = sigma
    mem[MEM_CONDITION] = sym3_condition(mass_matrix(state, p))
    return sigma, a, b
