"""Classical sliding-mode control with a boundary layer and the equivalent control.

Gains [k1, k2, lambda1, lambda2, K, kd]; the surface (see `nominal`) is

    sigma = k1 (theta1_dot + lambda1 theta1) - k2 (theta2_dot + lambda2 theta2)
            - kc (x_dot + lambdac x)

and the law  u = u_eq - sign(b) (K sat(sigma / phi) + kd sigma)  makes
sigma_dot = -|b| (K sat(sigma / phi) + kd sigma): a reaching phase at rate |b| K outside the
boundary layer of width phi, an exponential approach inside it. At 1 kHz the layer must be
wide enough that |b| (K / phi + kd) dt < 2, or the sampled loop chatters inside it.

The research project's published gains [20, 15, 12, 8, 35, 5] used a same-sign surface; on
this plant (absolute angles) that surface has unstable zero dynamics (a mode at +7.8 /s),
which `tests/controller_client/test_zero_dynamics.py` pins. The links enter with opposite
signs here, as in an LQR gain, and the cart term (options `cart_gain` kc, `cart_lambda`
lambdac) keeps the cart from drifting: without it the zero dynamics have a double eigenvalue
at 0 and the cart runs off at 0.25 m/s after a 0.1 rad start.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from controller_client.controllers.base import KernelLaw
from controller_client.controllers.nominal import (
    CART_OPTIONS,
    DEFAULT_SURFACE,
    saturate,
    surface,
)

GAIN_NAMES = ("k1", "k2", "lambda1", "lambda2", "K", "kd")
DEFAULT_GAINS = (*DEFAULT_SURFACE, 20.0, 5.0)
DEFAULT_OPTIONS = {"boundary_layer": 1.0, **CART_OPTIONS}


@njit(nogil=True, cache=True)
def classical_smc_kernel(state: np.ndarray, mem: np.ndarray, g: np.ndarray, o: np.ndarray,
                         p: np.ndarray, scratch: np.ndarray) -> float:
    """o = [max_force_n, dt_s, phi, kc, lambdac]."""
    sigma, a, b = surface(state, g[0], g[1], g[2], g[3], o[3], o[4], p, scratch, mem)
    u = a / b - np.sign(b) * (g[4] * saturate(sigma / o[2], 1.0) + g[5] * sigma)
    return saturate(u, o[0])


class ClassicalSMC(KernelLaw):
    """Classical SMC; stateless apart from its last sigma and cond(M)."""

    name = "classical_smc"
    gain_names = GAIN_NAMES
    default_gains = DEFAULT_GAINS
    kernel = classical_smc_kernel

    def _options(self, options: dict[str, Any]) -> dict[str, float]:
        opts = self.take_options(self.name, options, DEFAULT_OPTIONS)
        self.sigma_floor = 0.05 * opts["boundary_layer"]
        return opts

    def _pack(self) -> list[float]:
        o = self.options
        return [*super()._pack(), o["boundary_layer"], o["cart_gain"], o["cart_lambda"]]
