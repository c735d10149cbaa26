"""Classical sliding-mode control of the double inverted pendulum, with a boundary layer.

Sliding surface on the two link angles and rates (absolute angles, DESIGN.md layout):

    sigma = k1 (theta1_dot + lambda1 theta1) - k2 (theta2_dot + lambda2 theta2)

The two links enter with opposite signs, as in an LQR gain for this plant: with absolute
angles, a same-sign surface has unstable zero dynamics for every positive gain set (the
research project's published [20, 15, 12, 8, 35, 5] leaves a mode at +7.8 /s on the surface;
`tests/controller_client/test_classical_smc.py` pins this). The defaults
[2, 15, 30, 8, 35, 5] put the zero dynamics at -6.1 +/- 10.5j and -9.9 /s.

With the model M(q) q'' = B u - bias(q, q'), B = [1, 0, 0] and L = [0, k1, -k2]:

    sigma_dot = b u - a + k1 lambda1 theta1_dot - k2 lambda2 theta2_dot,
    b = L M^-1 B,   a = L M^-1 bias.

The equivalent control makes sigma_dot = 0; the switching and damping terms drive sigma to
the surface: u = u_eq - sign(b) (K sat(sigma / phi) + kd sigma), so that
sigma_dot = -|b| (K sat(sigma / phi) + kd sigma) (sat is the boundary layer of width phi,
which removes chattering; at 1 kHz it must be wide enough that |b| (K / phi + kd) dt < 2, or
the sampled loop chatters inside the layer). The output is saturated at the plant's max_force_n.

The controller's model of the plant is its own (nominal parameters from its options), as
on a rig; by default it is the default DIP.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numba import njit

from controller_client.controllers.gains import check_gains
from plant_server.models.dip import DIPParams, bias_forces, mass_matrix

GAIN_NAMES = ("k1", "k2", "lambda1", "lambda2", "K", "kd")
DEFAULT_GAINS = (2.0, 15.0, 30.0, 8.0, 35.0, 5.0)


@njit(cache=True)
def _inv3_col0_and_apply(m: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First column of m^-1 and m^-1 v for a symmetric positive-definite 3x3 m."""
    c00 = m[1, 1] * m[2, 2] - m[1, 2] * m[2, 1]
    c01 = m[1, 2] * m[2, 0] - m[1, 0] * m[2, 2]
    c02 = m[1, 0] * m[2, 1] - m[1, 1] * m[2, 0]
    det = m[0, 0] * c00 + m[0, 1] * c01 + m[0, 2] * c02
    inv = np.empty((3, 3))
    inv[0, 0] = c00
    inv[1, 0] = c01
    inv[2, 0] = c02
    inv[0, 1] = m[0, 2] * m[2, 1] - m[0, 1] * m[2, 2]
    inv[1, 1] = m[0, 0] * m[2, 2] - m[0, 2] * m[2, 0]
    inv[2, 1] = m[0, 1] * m[2, 0] - m[0, 0] * m[2, 1]
    inv[0, 2] = m[0, 1] * m[1, 2] - m[0, 2] * m[1, 1]
    inv[1, 2] = m[0, 2] * m[1, 0] - m[0, 0] * m[1, 2]
    inv[2, 2] = m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]
    inv /= det
    mv = np.empty(3)
    for i in range(3):
        mv[i] = inv[i, 0] * v[0] + inv[i, 1] * v[1] + inv[i, 2] * v[2]
    return inv[:, 0].copy(), mv


@njit(cache=True)
def classical_smc_kernel(state: np.ndarray, g: np.ndarray, phi: float, max_force: float,
                         p: np.ndarray) -> tuple[float, float]:
    """Return (force, sigma) for `state`, gains g = [k1, k2, l1, l2, K, kd]."""
    k1, k2, l1, l2, big_k, kd = g[0], g[1], g[2], g[3], g[4], g[5]
    th1, th2, th1d, th2d = state[1], state[2], state[4], state[5]
    sigma = k1 * (th1d + l1 * th1) - k2 * (th2d + l2 * th2)
    minv_b, minv_bias = _inv3_col0_and_apply(mass_matrix(state, p), bias_forces(state, p))
    b = k1 * minv_b[1] - k2 * minv_b[2]
    a = k1 * minv_bias[1] - k2 * minv_bias[2]
    u_eq = (a - k1 * l1 * th1d + k2 * l2 * th2d) / b
    s = sigma / phi
    sat = 1.0 if s > 1.0 else (-1.0 if s < -1.0 else s)
    u = u_eq - np.sign(b) * (big_k * sat + kd * sigma)
    if u > max_force:
        u = max_force
    elif u < -max_force:
        u = -max_force
    return u, sigma


class ClassicalSMC:
    """Stateless apart from its last sigma; `reset()` clears it."""

    name = "classical_smc"
    gain_names = GAIN_NAMES

    def __init__(self, gains: Sequence[float] | None = None, boundary_layer: float = 0.2,
                 max_force_n: float | None = None, model_params: dict[str, float] | None = None
                 ) -> None:
        self.gains = check_gains(self.name, GAIN_NAMES, DEFAULT_GAINS if gains is None else gains)
        if not boundary_layer > 0:
            raise ValueError(f"boundary_layer must be > 0, got {boundary_layer!r}")
        self.params = DIPParams(**(model_params or {}))
        limit = max_force_n if max_force_n is not None else self.params.max_force_n
        self.max_force_n = float(limit)
        self.boundary_layer = float(boundary_layer)
        self._g = np.array(self.gains)
        self._p = self.params.as_array()
        self.last_sigma = 0.0

    def reset(self) -> None:
        self.last_sigma = 0.0

    def compute(self, state: np.ndarray, t: float) -> float:
        u, self.last_sigma = classical_smc_kernel(state, self._g, self.boundary_layer,
                                                  self.max_force_n, self._p)
        return u

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "gains": dict(zip(GAIN_NAMES, self.gains, strict=True)),
                "boundary_layer": self.boundary_layer, "max_force_n": self.max_force_n}
