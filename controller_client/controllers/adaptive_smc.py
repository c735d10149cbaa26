"""Adaptive sliding-mode control: the switching gain is adapted online.

Gains [k1, k2, lambda1, lambda2, gamma] on the shared surface (see `nominal`):

    u = u_eq - sign(b) (K_hat sat(sigma / phi) + kd sigma)
    K_hat' = gamma |sigma| [outside the dead zone]  - leak (K_hat - K_init)

The adaptation has a dead zone (|sigma| <= dead_zone adds nothing, so noise on the surface
does not pump the gain up), a leak back to K_init (the gain comes down once the disturbance
is gone), a rate limit (|K_hat'| <= rate_limit) and bounds [K_min, K_max]. K_hat lives in
the law's `mem` and persists across steps; `reset()` puts it back to K_init.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from controller_client.controllers.base import KernelLaw, require_ordered
from controller_client.controllers.nominal import (
    CART_OPTIONS,
    DEFAULT_SURFACE,
    MEM_FIRST_FREE,
    saturate,
    surface,
)

GAIN_NAMES = ("k1", "k2", "lambda1", "lambda2", "gamma")
DEFAULT_GAINS = (*DEFAULT_SURFACE, 20.0)
DEFAULT_OPTIONS = {
    "boundary_layer": 1.0, "kd": 5.0, "k_init": 10.0, "k_min": 2.0, "k_max": 60.0,
    "leak": 0.5, "dead_zone": 0.02, "rate_limit": 200.0, **CART_OPTIONS,
}
MEM_K = MEM_FIRST_FREE


@njit(nogil=True, cache=True)
def adapt(value: float, drive: float, rest: float, leak: float, rate_limit: float,
          low: float, high: float, dt: float) -> float:
    """One step of a leaky, rate-limited, bounded adaptation law."""
    rate = saturate(drive - leak * (value - rest), rate_limit)
    return min(max(value + rate * dt, low), high)


@njit(nogil=True, cache=True)
def adaptive_smc_kernel(state: np.ndarray, mem: np.ndarray, g: np.ndarray, o: np.ndarray,
                        p: np.ndarray, scratch: np.ndarray) -> float:
    """o = [max_force_n, dt_s, phi, kc, lambdac, kd, k_init, k_min, k_max, leak, dead_zone,
    rate_limit]."""
    sigma, a, b = surface(state, g[0], g[1], g[2], g[3], o[3], o[4], p, scratch, mem)
    k_hat = mem[MEM_K]
    u = a / b - np.sign(b) * (k_hat * saturate(sigma / o[2], 1.0) + o[5] * sigma)
    drive = g[4] * abs(sigma) if abs(sigma) > o[10] else 0.0
    mem[MEM_K] = adapt(k_hat, drive, o[6], o[9], o[11], o[7], o[8], o[1])
    return saturate(u, o[0])


class AdaptiveSMC(KernelLaw):
    """Adaptive SMC; its adapted gain K_hat persists across steps until `reset()`."""

    name = "adaptive_smc"
    gain_names = GAIN_NAMES
    default_gains = DEFAULT_GAINS
    kernel = adaptive_smc_kernel
    mem_size = MEM_FIRST_FREE + 1

    def _options(self, options: dict[str, Any]) -> dict[str, float]:
        opts = self.take_options(self.name, options, DEFAULT_OPTIONS)
        require_ordered(self.name, opts, "k_min", "k_init", "k_max")
        self.sigma_floor = 0.05 * opts["boundary_layer"]
        return opts

    def _pack(self) -> list[float]:
        o = self.options
        return [*super()._pack(), o["boundary_layer"], o["cart_gain"], o["cart_lambda"], o["kd"],
                o["k_init"], o["k_min"], o["k_max"], o["leak"], o["dead_zone"], o["rate_limit"]]

    def _initial_mem(self, mem: np.ndarray) -> None:
        mem[MEM_K] = self.options["k_init"]

    @property
    def adapted_gain(self) -> float:
        """The switching gain K_hat, N."""
        return float(self._mem[MEM_K])
