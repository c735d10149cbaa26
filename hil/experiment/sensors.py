"""What the law sees of the state: as a rig's sensors give it, noisy, quantised and late.

`Sensors.sense(state)` rewrites the state vector in place, once per control, in this order:
Gaussian noise (`noise_std` per state, from a seeded PCG64 stream: one draw of every state per
control), quantisation to the nearest multiple of the state's resolution (an encoder of
`counts_per_rev` counts has a resolution of 2 pi / counts rad), then the delay: the law gets
the measurement of `delay_samples` controls before (the first one until there are that many).
The controller applies it to the state it received, before the law computes, so a lockstep run
is the same whatever carries the state (ZeroMQ or shared memory) and the same on every run;
the recordings keep the true state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numba import njit

from hil.config import SensorsConfig


@njit(nogil=True, cache=True)
def _sense(state: np.ndarray, coeffs: np.ndarray, ring: np.ndarray, k: int) -> None:
    """coeffs: rows noise (this control's draws), std, resolution (0: none); ring: the last
    delay + 1 measurements (delay = its rows - 1); k: this control's index."""
    n = state.shape[0]
    for i in range(n):
        v = state[i] + coeffs[1, i] * coeffs[0, i]
        r = coeffs[2, i]
        if r > 0.0:
            v = r * math.floor(v / r + 0.5)
        state[i] = v
    delay = ring.shape[0] - 1
    if delay > 0:
        ring[k % (delay + 1), :] = state
        state[:] = ring[max(k - delay, 0) % (delay + 1)]


class Sensors:
    """The sensors of one run (module docstring); `sense` is the loop's, `count` how many
    states it has seen."""

    def __init__(self, config: SensorsConfig, state_names: Sequence[str]) -> None:
        names = list(state_names)
        n = len(names)
        self.std = np.array([config.noise_std.get(s, 0.0) for s in names], dtype=np.float64)
        self.resolution = np.array([
            config.resolution.get(s, 2.0 * math.pi / config.counts_per_rev[s]
                                  if s in config.counts_per_rev else 0.0)
            for s in names], dtype=np.float64)
        self.delay = int(config.delay_samples)
        self._noisy = bool(np.any(self.std > 0.0))
        self._rng = np.random.Generator(np.random.PCG64(config.seed))
        self._coeffs = np.zeros((3, n))  # noise (drawn per control), std, resolution
        self._coeffs[1] = self.std
        self._coeffs[2] = self.resolution
        self._noise = self._coeffs[0]  # a view: the draws land in the kernel's row
        self._ring = np.zeros((self.delay + 1, n))
        self.count = 0
        _sense(np.zeros(n), np.zeros((3, n)), np.zeros((1, n)), 0)

    @property
    def active(self) -> bool:
        """False when the sensors change nothing (no noise, quantisation or delay)."""
        return self._noisy or self.delay > 0 or bool(np.any(self.resolution > 0.0))

    def sense(self, state: np.ndarray) -> None:
        """`state` (float64, one entry per state) becomes what the law sees."""
        if self._noisy:
            self._rng.standard_normal(out=self._noise)
        _sense(state, self._coeffs, self._ring, self.count)
        self.count += 1
