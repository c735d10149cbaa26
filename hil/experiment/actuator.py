"""The simulated plant's actuators: what stands between the control and the model.

First an input delay of `delay_steps` whole plant periods, every input alike: the simulated
plant shifts each control's arrival that much later (plant_server/backends/sim.py), so the
command held before it (zero, or the safe output) acts meanwhile; deterministic in lockstep,
a transport delay in realtime. Then per input, in this order (each optional): a dead zone of
half-width `deadband` (a command within it gives nothing, one beyond it gives the command
minus the band: Simulink's Dead Zone), a first-order lag of time constant `lag_s` (stepped
exactly for a command held over the step: a += (v - a) (1 - exp(-dt / lag))), and a rate
limit of `rate_limit_per_s` (the output moves at most rate * dt in a step). The simulated
plant steps it once per integration step (at most a plant period) and holds its output over
the step (plant_server/backends/sim.py); the recording keeps the control and the actuator's
output (`actuator_<input>`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numba import njit

from hil.config import ActuatorConfig


@njit(nogil=True, cache=True)
def _actuate(command: np.ndarray, params: np.ndarray, out: np.ndarray, dt_s: float) -> None:
    """out (the actuators' outputs) one step of `dt_s` on from `command`; params rows:
    deadband, lag_s, rate_limit_per_s (0: none)."""
    for i in range(out.shape[0]):
        v = command[i]
        band = params[0, i]
        if band > 0.0:
            v = 0.0 if abs(v) <= band else v - math.copysign(band, v)
        lag = params[1, i]
        a = out[i]
        target = v if lag <= 0.0 else a + (v - a) * (1.0 - math.exp(-dt_s / lag))
        rate = params[2, i]
        if rate > 0.0:
            most = rate * dt_s
            target = min(max(target, a - most), a + most)
        out[i] = target


class Actuator:
    """The actuators of one run's inputs; `output` is what the model got in the last step."""

    def __init__(self, config: ActuatorConfig, input_names: Sequence[str]) -> None:
        names = list(input_names)
        self.params = np.array([[config.deadband.get(n, 0.0) for n in names],
                                [config.lag_s.get(n, 0.0) for n in names],
                                [config.rate_limit_per_s.get(n, 0.0) for n in names]],
                               dtype=np.float64)
        self.output = np.zeros(len(names))
        self.delay_steps = int(config.delay_steps)
        _actuate(np.zeros(len(names)), self.params, np.zeros(len(names)), 1e-3)

    @property
    def active(self) -> bool:
        """False when the actuators pass every command through unchanged, at once."""
        return bool(np.any(self.params > 0.0)) or self.delay_steps > 0

    def step(self, command: np.ndarray, dt_s: float) -> np.ndarray:
        """The output over the next `dt_s` for `command` held over it (the same array each
        call)."""
        _actuate(command, self.params, self.output, dt_s)
        return self.output
