"""LQR for any plant: u = -K x about the plant's equilibrium, K from the Riccati equation.

The plant model (the `model` context: built in or a lab's own) is linearised numerically
about its equilibrium (`riccati.linearise_model`) and the continuous algebraic Riccati
equation is solved by SciPy (`riccati.lqr`); with no model the law designs for the default
double inverted pendulum. The gains are the LQR weights: one `q_<state>` per state (Q
diagonal) and `r` (R). Their defaults follow Bryson's rule from the state units: an
acceptable deviation of 0.32 m, 0.1 rad, 1 m/s or rad/s (1 for other units) gives
q = 1 / deviation^2 (10, 100, 1), and 1/15 of the input limit gives r (0.01 at 150 N). The
options `q` (a list) and `r` replace those defaults. The output is saturated at the input
limit. For the stability monitors the law reports sigma = sqrt(x' P x), so that
V = sigma^2 / 2 is the Lyapunov function the design certifies for the linearised loop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from numba import njit

from controller_client.controllers.base import KernelLaw, positive_option
from controller_client.controllers.nominal import MEM_CONDITION, MEM_SIGMA, saturate, sym3_condition
from controller_client.controllers.riccati import linearise, linearise_model, lqr
from hil.dynamics.dip import STATE_NAMES as DIP_STATE_NAMES
from hil.dynamics.dip import STATE_UNITS as DIP_STATE_UNITS
from hil.dynamics.dip import mass_matrix

_DEVIATION = {"m": 1 / math.sqrt(10.0), "rad": 0.1, "m/s": 1.0, "rad/s": 1.0}
_INPUT_SHARE = 1 / 15


def bryson_weights(units: Sequence[str], input_limit: float) -> tuple[float, ...]:
    """Default (q..., r) from the state units and the input limit (module docstring)."""
    q = [round(1.0 / _DEVIATION.get(u, 1.0) ** 2, 12) for u in units]
    return (*q, round(1.0 / (input_limit * _INPUT_SHARE) ** 2, 12))


GAIN_NAMES = (*(f"q_{n}" for n in DIP_STATE_NAMES), "r")
DEFAULT_GAINS = bryson_weights(DIP_STATE_UNITS, 150.0)


@njit(nogil=True, cache=True)
def lqr_kernel(state: np.ndarray, mem: np.ndarray, g: np.ndarray, o: np.ndarray,
               p: np.ndarray, scratch: np.ndarray) -> float:
    """The double inverted pendulum: o = [max_force_n, dt_s, K (6), P (36, row-major)]."""
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


@njit(nogil=True, cache=True)
def lqr_any_kernel(state: np.ndarray, mem: np.ndarray, g: np.ndarray, o: np.ndarray,
                   p: np.ndarray, scratch: np.ndarray) -> float:
    """Any plant of n states: o = [limit, dt_s, x_eq (n), K (n), P (n*n)]; cond(M) is NaN."""
    n = state.shape[0]
    k0 = 2 + n
    p0 = 2 + 2 * n
    u = 0.0
    v = 0.0
    for i in range(n):
        di = state[i] - o[2 + i]
        u -= o[k0 + i] * di
        row = 0.0
        for j in range(n):
            row += o[p0 + n * i + j] * (state[j] - o[2 + j])
        v += di * row
    mem[MEM_SIGMA] = math.sqrt(max(v, 0.0))
    mem[MEM_CONDITION] = math.nan
    return saturate(u, o[0])


class LQR(KernelLaw):
    """Linear-quadratic regulator about the plant's equilibrium; stateless apart from its
    last figures."""

    name = "lqr"
    gain_names = GAIN_NAMES
    default_gains = DEFAULT_GAINS
    kernel = lqr_kernel
    sigma_floor = 1e-3
    fits = None

    def __init__(self, gains: Sequence[float] | None = None, *, model: Any = None,
                 plant: Any = None, **options: Any) -> None:
        self._model = model if model is not None and getattr(model, "name", "dip") != "dip" \
            else None
        q_option, r_option = options.pop("q", None), options.pop("r", None)
        if self._model is not None:
            names, units = model.state_names, model.state_units
            self.gain_names = (*(f"q_{n}" for n in names), "r")
            defaults = bryson_weights(units, float(model.max_force_n))
        else:
            names, defaults = DIP_STATE_NAMES, DEFAULT_GAINS
        if q_option is not None:
            if isinstance(q_option, (str, bytes)) or len(q_option) != len(names):
                raise ValueError(f"option q must be a list of {len(names)} weights, one per "
                                 f"state {list(names)}, got {q_option!r}")
            defaults = (*(positive_option("q", v) for v in q_option), defaults[-1])
        if r_option is not None:
            defaults = (*defaults[:-1], positive_option("r", r_option))
        self.default_gains = defaults
        if self._model is not None:
            options.setdefault("max_force_n", float(model.max_force_n))
        super().__init__(gains, model=model, plant=plant, **options)
        if self._model is not None:
            self._kernel = lqr_any_kernel

    def _pack(self) -> list[float]:
        n = len(self.gain_names) - 1
        if self._model is not None:
            a, b = linearise_model(self._model)
        else:
            a, b = linearise(self.params)
        q = np.diag(self.gains[:n])
        r = np.array([[self.gains[n]]])
        k, p = lqr(a, b, q, r)
        self.k = k.ravel()
        self.p_matrix = p
        if self._model is not None:
            return [*super()._pack(), *self._model.equilibrium, *self.k, *p.ravel()]
        return [*super()._pack(), *self.k, *p.ravel()]

    def describe(self) -> dict[str, object]:
        d = super().describe()
        d["K"] = [float(v) for v in self.k]
        return d
