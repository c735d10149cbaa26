"""LQR baseline: u = -K x on the nominal model linearised at upright, computed at start-up.

Gains are the LQR weights [q_x, q_theta1, q_theta2, q_x_dot, q_theta1_dot, q_theta2_dot, r]
(Q diagonal, R scalar). K and the Riccati solution P are computed in `__init__`
(`riccati.lqr`); the output is saturated at max_force_n. For the stability monitors the law
reports sigma = sqrt(x' P x), so that V = sigma^2 / 2 = x' P x / 2 is the Lyapunov function
the LQR design certifies for the linearised closed loop.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from controller_client.controllers.base import KernelLaw
from controller_client.controllers.nominal import MEM_CONDITION, MEM_SIGMA, saturate, sym3_condition
from controller_client.controllers.riccati import linearise, lqr
from hil.dynamics.dip import mass_matrix

GAIN_NAMES = ("q_x", "q_theta1", "q_theta2", "q_x_dot", "q_theta1_dot", "q_theta2_dot", "r")
DEFAULT_GAINS = (10.0, 100.0, 100.0, 1.0, 1.0, 1.0, 0.01)


@njit(nogil=True, cache=True)
def lqr_kernel(state: np.ndarray, mem: np.ndarray, g: np.ndarray, o: np.ndarray,
               p: np.ndarray, scratch: np.ndarray) -> float:
    """o = [max_force_n, dt_s, K (6), P (36, row-major)]."""
    u = 0.0
    v = 0.0
    for i in range(6):
        u -= o[2 + i] * state[i]
        row = 0.0
        for j in range(6):
            row += o[8 + 6 * i + j] * state[j]
        v += state[i] * row
    mem[MEM_SIGMA] = math.sqrt(max(v, 0.0))
    mem[MEM_CONDITION] = sym3_condition(mass_matrix(state, p))
    return saturate(u, o[0])


class LQR(KernelLaw):
    """Linear-quadratic regulator about upright; stateless apart from its last figures."""

    name = "lqr"
    gain_names = GAIN_NAMES
    default_gains = DEFAULT_GAINS
    kernel = lqr_kernel
    sigma_floor = 1e-3

    def _pack(self) -> list[float]:
        a, b = linearise(self.params)
        q = np.diag(self.gains[:6])
        r = np.array([[self.gains[6]]])
        k, p = lqr(a, b, q, r)
        self.k = k.ravel()
        self.p_matrix = p
        return [*super()._pack(), *self.k, *p.ravel()]

    def describe(self) -> dict[str, object]:
        d = super().describe()
        d["K"] = [float(v) for v in self.k]
        return d
