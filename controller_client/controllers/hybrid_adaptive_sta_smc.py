"""Hybrid adaptive super-twisting SMC: super-twisting with both gains adapted, cart recentring.

Gains [c1, lambda1, c2, lambda2]: the link part of the shared surface (see `nominal`)

    sigma = c1 (theta1_dot + lambda1 theta1) - c2 (theta2_dot + lambda2 theta2)
            - kc (x_dot + lambdac x)

whose cart term (options `cart_gain`, `cart_lambda`) recentres the cart. The super-twisting
law of `sta_smc` runs with gains K1_hat, K2_hat adapted as in `adaptive_smc`:

    K1_hat' = gamma1 |sigma|,  K2_hat' = gamma2 |sigma|   (outside the dead zone)
              - leak (K_hat - K_init), rate-limited and bounded to [K_min, K_max].

The integral z and both adapted gains live in `mem`, persist across steps, and are reset
only by `reset()`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from controller_client.controllers.adaptive_smc import adapt
from controller_client.controllers.base import KernelLaw, require_ordered
from controller_client.controllers.nominal import (
    CART_OPTIONS,
    DEFAULT_SURFACE,
    MEM_FIRST_FREE,
    surface,
)
from controller_client.controllers.sta_smc import super_twist

GAIN_NAMES = ("c1", "lambda1", "c2", "lambda2")
DEFAULT_GAINS = (DEFAULT_SURFACE[0], DEFAULT_SURFACE[2], DEFAULT_SURFACE[1], DEFAULT_SURFACE[3])
DEFAULT_OPTIONS = {
    "boundary_layer": 0.05, "gamma1": 4.0, "gamma2": 20.0, "k1_init": 4.0, "k2_init": 20.0,
    "k1_max": 30.0, "k2_max": 150.0, "k_min": 1.0, "leak": 0.5, "dead_zone": 0.02,
    "rate_limit": 200.0, **CART_OPTIONS,
}
MEM_Z, MEM_K1, MEM_K2 = MEM_FIRST_FREE, MEM_FIRST_FREE + 1, MEM_FIRST_FREE + 2


@njit(nogil=True, cache=True)
def hybrid_kernel(state: np.ndarray, mem: np.ndarray, g: np.ndarray, o: np.ndarray,
                  p: np.ndarray, scratch: np.ndarray) -> float:
    """o = [max_force_n, dt_s, phi, kc, lambdac, gamma1, gamma2, k1_init, k2_init, k1_max,
    k2_max, k_min, leak, dead_zone, rate_limit]."""
    sigma, a, b = surface(state, g[0], g[2], g[1], g[3], o[3], o[4], p, scratch, mem)
    k1, k2 = mem[MEM_K1], mem[MEM_K2]
    u = super_twist(sigma, a, b, k1, k2, o[2], o[0], o[0], o[1], mem, MEM_Z)
    mag = abs(sigma) if abs(sigma) > o[13] else 0.0
    mem[MEM_K1] = adapt(k1, o[5] * mag, o[7], o[12], o[14], o[11], o[9], o[1])
    mem[MEM_K2] = adapt(k2, o[6] * mag, o[8], o[12], o[14], o[11], o[10], o[1])
    return u


class HybridAdaptiveSTASMC(KernelLaw):
    """Adaptive super-twisting SMC with cart recentring; z, K1_hat, K2_hat persist."""

    name = "hybrid_adaptive_sta_smc"
    gain_names = GAIN_NAMES
    default_gains = DEFAULT_GAINS
    kernel = hybrid_kernel
    mem_size = MEM_FIRST_FREE + 3

    def _options(self, options: dict[str, Any]) -> dict[str, float]:
        opts = self.take_options(self.name, options, DEFAULT_OPTIONS)
        require_ordered(self.name, opts, "k_min", "k1_init", "k1_max")
        require_ordered(self.name, opts, "k_min", "k2_init", "k2_max")
        self.sigma_floor = opts["boundary_layer"]
        return opts

    def _pack(self) -> list[float]:
        o = self.options
        keys = ("boundary_layer", "cart_gain", "cart_lambda", "gamma1", "gamma2", "k1_init",
                "k2_init", "k1_max", "k2_max", "k_min", "leak", "dead_zone", "rate_limit")
        return [*super()._pack(), *(o[k] for k in keys)]

    def _initial_mem(self, mem: np.ndarray) -> None:
        mem[MEM_K1] = self.options["k1_init"]
        mem[MEM_K2] = self.options["k2_init"]

    @property
    def adapted_gains(self) -> tuple[float, float]:
        """(K1_hat, K2_hat)."""
        return float(self._mem[MEM_K1]), float(self._mem[MEM_K2])
