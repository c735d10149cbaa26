"""Super-twisting sliding-mode control (second-order sliding mode), continuous output.

Gains [K1, K2, k1, k2, lambda1, lambda2] on the shared surface (see `nominal`):

    u = u_eq - sign(b) (K1 sqrt|sigma| sat(sigma / phi) + z),    z' = K2 sat(sigma / phi)

so sigma_dot = -|b| (K1 sqrt|sigma| sign(sigma) + z). The discontinuity sits in z's
derivative, so the force is continuous: no chattering at the boundary; the thin layer phi
only smooths the sign for the sampled loop. The integral z lives in the law's `mem` and is
carried across steps (integrated with the fixed period `dt_s`); `reset()` zeroes it.

Anti-windup: z is clamped to +-`integral_limit_n` (default max_force_n), and it is not
integrated further in a direction in which the output is already saturated.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit

from controller_client.controllers.base import KernelLaw
from controller_client.controllers.nominal import (
    CART_OPTIONS,
    DEFAULT_SURFACE,
    MEM_FIRST_FREE,
    saturate,
    surface,
)

GAIN_NAMES = ("K1", "K2", "k1", "k2", "lambda1", "lambda2")
DEFAULT_GAINS = (8.0, 40.0, *DEFAULT_SURFACE)
DEFAULT_OPTIONS = {"boundary_layer": 0.05, **CART_OPTIONS}
MEM_Z = MEM_FIRST_FREE


@njit(nogil=True, cache=True)
def super_twist(sigma: float, a: float, b: float, k1: float, k2: float, phi: float,
                z_limit: float, max_force: float, dt: float, mem: np.ndarray, z_slot: int
                ) -> float:
    """The super-twisting step shared with the hybrid law; updates mem[z_slot]."""
    s = saturate(sigma / phi, 1.0)
    z = mem[z_slot]
    sgn = np.sign(b)
    u = a / b - sgn * (k1 * math.sqrt(abs(sigma)) * s + z)
    dz = k2 * s * dt
    # conditional integration: do not wind z up further against a saturated output
    pushes = -sgn * dz  # the change of u the integration would cause
    if not ((u >= max_force and pushes > 0.0) or (u <= -max_force and pushes < 0.0)):
        mem[z_slot] = saturate(z + dz, z_limit)
    return saturate(u, max_force)


@njit(nogil=True, cache=True)
def sta_smc_kernel(state: np.ndarray, mem: np.ndarray, g: np.ndarray, o: np.ndarray,
                   p: np.ndarray, scratch: np.ndarray) -> float:
    """o = [max_force_n, dt_s, phi, kc, lambdac, integral_limit_n]."""
    sigma, a, b = surface(state, g[2], g[3], g[4], g[5], o[3], o[4], p, scratch, mem)
    return super_twist(sigma, a, b, g[0], g[1], o[2], o[5], o[0], o[1], mem, MEM_Z)


class STASMC(KernelLaw):
    """Super-twisting SMC; its integral z persists across steps until `reset()`."""

    name = "sta_smc"
    gain_names = GAIN_NAMES
    default_gains = DEFAULT_GAINS
    kernel = sta_smc_kernel
    mem_size = MEM_FIRST_FREE + 1

    def _options(self, options: dict[str, Any]) -> dict[str, float]:
        opts = self.take_options(self.name, options,
                                 {**DEFAULT_OPTIONS, "integral_limit_n": self.max_force_n})
        self.sigma_floor = opts["boundary_layer"]
        return opts

    def _pack(self) -> list[float]:
        o = self.options
        return [*super()._pack(), o["boundary_layer"], o["cart_gain"], o["cart_lambda"],
                o["integral_limit_n"]]

    @property
    def integral(self) -> float:
        """The super-twisting integral z, N."""
        return float(self._mem[MEM_Z])
