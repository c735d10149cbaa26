"""LQR for any plant, one input or several: u = u_eq - K (x - x_eq), K from the Riccati
equation; given the run's target (`compute(state, t, target)`, docs/experiments.md) it tracks
it: u = u_eq - K (x - target), K and u_eq designed about the equilibrium.

The plant model (the `model` context: built in or a lab's own) is linearised numerically
about its equilibrium x_eq and trim input u_eq (`riccati.linearise_model`) and the continuous
algebraic Riccati equation is solved by SciPy (`riccati.lqr`); with no model the law designs
for the default double inverted pendulum. The trim is the plant's own (`equilibrium_input`)
or, when it declares none, the input within the limits that solves f(x_eq, u_eq) = 0
(`hil.dynamics.contract.find_trim`). A plant with no such input, or whose (A, B) is not
stabilisable, is refused when the law is built (`LQRDesignError`, a `PluginError`: the
controller exits 2 naming the reason).

The gains are the LQR weights: one `q_<state>` per state (Q diagonal), and `r` (one input)
or one `r_<input>` per input (R diagonal). Their defaults follow Bryson's rule from the state
units: an acceptable deviation of 0.32 m, 0.1 rad, 1 m/s or rad/s (1 for other units) gives
q = 1 / deviation^2 (10, 100, 1), and 1/15 of an input's half range gives its r (0.01 at
+-150 N). The options `q` (a list) and `r` (a number, or a list of one per input) replace
those defaults. Each input is saturated at its limits. A state the plant says wraps (a
heading, a pendulum angle) is regulated the short way round: its error is taken modulo a full
turn. For the stability monitors the law reports sigma = sqrt(dx' P dx), so that
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
from controller_client.controllers.riccati import (
    linearise,
    linearise_model,
    lqr,
    unstabilisable_modes,
)
from hil.dynamics.contract import find_trim
from hil.dynamics.dip import STATE_NAMES as DIP_STATE_NAMES
from hil.dynamics.dip import STATE_UNITS as DIP_STATE_UNITS
from hil.dynamics.dip import mass_matrix
from hil.dynamics.inputs import Inputs
from hil.dynamics.plugins import PluginError

_DEVIATION = {"m": 1 / math.sqrt(10.0), "rad": 0.1, "m/s": 1.0, "rad/s": 1.0}
_INPUT_SHARE = 1 / 15


class LQRDesignError(PluginError):
    """The plant cannot be held at its equilibrium by a linear-quadratic regulator: no trim
    input holds it, or (A, B) is not stabilisable. The message names the reason."""


def bryson_weights(units: Sequence[str], *input_ranges: float) -> tuple[float, ...]:
    """Default (q..., r...) from the state units and each input's half range (module
    docstring)."""
    q = [round(1.0 / _DEVIATION.get(u, 1.0) ** 2, 12) for u in units]
    return (*q, *(round(1.0 / (half * _INPUT_SHARE) ** 2, 12) for half in input_ranges))


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
def lqr_track_kernel(state: np.ndarray, target: np.ndarray, mem: np.ndarray, o: np.ndarray,
                     p: np.ndarray) -> float:
    """`lqr_kernel` about `target` instead of upright at x = 0: u = -K (x - target); the same
    numbers as `lqr_kernel` for a zero target. cond(M) is the nominal model's at x."""
    u = 0.0
    v = 0.0
    for i in range(6):
        u -= o[2 + i] * (state[i] - target[i])
        row = 0.0
        for j in range(6):
            row += o[8 + 6 * i + j] * (state[j] - target[j])
        v += (state[i] - target[i]) * row
    mem[MEM_SIGMA] = math.sqrt(max(v, 0.0))
    mem[MEM_CONDITION] = sym3_condition(mass_matrix(state, p))
    return saturate(u, o[0])


@njit(nogil=True, cache=True)
def lqr_plant_kernel(state: np.ndarray, mem: np.ndarray, o: np.ndarray, u: np.ndarray,
                     dx: np.ndarray) -> None:
    """`lqr_plant_track_kernel` about the equilibrium x_eq packed in `o`."""
    lqr_plant_track_kernel(state, o[2:2 + state.shape[0]], mem, o, u, dx)


@njit(nogil=True, cache=True)
def lqr_plant_track_kernel(state: np.ndarray, target: np.ndarray, mem: np.ndarray,
                           o: np.ndarray, u: np.ndarray, dx: np.ndarray) -> None:
    """Any plant of n states and m inputs: u = u_eq - K dx, each input held within
    [low, high], dx = x - target (the equilibrium x_eq, or the run's target; for a state that
    wraps, taken into [-pi, pi): the short way round). o = [limit, dt_s, x_eq (n), wraps (n,
    1 or 0), u_eq (m), low (m), high (m), K (m*n, row-major), P (n*n)]; sigma =
    sqrt(dx' P dx); cond(M) is NaN."""
    n = state.shape[0]
    m = u.shape[0]
    w0 = 2 + n
    ueq0 = w0 + n
    lo0 = ueq0 + m
    hi0 = lo0 + m
    k0 = hi0 + m
    p0 = k0 + m * n
    for i in range(n):
        d = state[i] - target[i]
        if o[w0 + i] != 0.0:
            d -= 2.0 * math.pi * math.floor((d + math.pi) / (2.0 * math.pi))
        dx[i] = d
    v = 0.0
    for i in range(n):
        row = 0.0
        for j in range(n):
            row += o[p0 + n * i + j] * dx[j]
        v += dx[i] * row
    for r in range(m):
        ur = o[ueq0 + r]
        for i in range(n):
            ur -= o[k0 + n * r + i] * dx[i]
        u[r] = min(max(ur, o[lo0 + r]), o[hi0 + r])
    mem[MEM_SIGMA] = math.sqrt(max(v, 0.0))
    mem[MEM_CONDITION] = math.nan


class LQR(KernelLaw):
    """Linear-quadratic regulator about the plant's equilibrium and trim; stateless apart from
    its last figures."""

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
            self._design_point(self._model)
            names, n_r = model.state_names, self.inputs.n
            half = [(hi - lo) / 2 for lo, hi in zip(self.inputs.low, self.inputs.high,
                                                     strict=True)]
            defaults = bryson_weights(model.state_units, *half)
            options.setdefault("max_force_n", self.inputs.magnitude[0])
        else:
            names, n_r, defaults = DIP_STATE_NAMES, 1, DEFAULT_GAINS
        self.default_gains = _weights(defaults, names, n_r, q_option, r_option)
        super().__init__(gains, model=model, plant=plant, **options)

    def _design_point(self, model: Any) -> None:
        """The plant's inputs, gain names, x_eq and u_eq; LQRDesignError if no trim holds the
        equilibrium or no linear feedback can stabilise the plant there."""
        self.inputs: Inputs = model.inputs
        where = f"controller.name: lqr cannot hold plant {model.name!r} at its equilibrium"
        self.gain_names = (*(f"q_{n}" for n in model.state_names), *(
            ("r",) if self.inputs.n == 1 else (f"r_{n}" for n in self.inputs.names)))
        self.x_eq = np.asarray(model.equilibrium, dtype=np.float64)
        trim = model.trim() if hasattr(model, "trim") else None
        if trim is None and getattr(model, "equilibrium_input", None) is None:
            trim = find_trim(model.derivatives, self.x_eq, self.inputs)
        if trim is not None and not trim.found:
            raise LQRDesignError(f"{where}: {trim.reason(self.inputs.names)}")
        self.u_eq = np.asarray(trim.u if trim is not None else model.equilibrium_input,
                               dtype=np.float64)
        a, b = linearise_model(model, self.x_eq, self.u_eq)
        modes = unstabilisable_modes(a, b)
        if modes:
            raise LQRDesignError(
                f"{where}: (A, B) linearised there is not stabilisable: the mode(s) "
                f"{', '.join(f'{m:.4g}' for m in modes)} of A are not reached by the inputs "
                f"{list(self.inputs.names)}; a linear feedback cannot hold it (check B, the "
                f"equilibrium, or use a law of your own)")
        self.a, self.b = a, b
        wraps = set(getattr(model, "wraps", ()))
        self._wraps = [1.0 if n in wraps else 0.0 for n in model.state_names]
        self._u = np.zeros(self.inputs.n)
        self._dx = np.zeros(len(self.x_eq))

    def _pack(self) -> list[float]:
        n = len(self.x_eq) if self._model is not None else len(DIP_STATE_NAMES)
        if self._model is not None:
            a, b = self.a, self.b
        else:
            a, b = linearise(self.params)
        q = np.diag(self.gains[:n])
        r = np.diag(self.gains[n:])
        k, p = lqr(a, b, q, r)
        # One input: K as the vector it always was; several: m x n, one row per input.
        self.k = k.ravel() if self._model is None or self.inputs.n == 1 else k
        self.p_matrix = p
        if self._model is None:
            return [*super()._pack(), *self.k, *p.ravel()]
        low, high = np.array(self.inputs.low), np.array(self.inputs.high)
        if self.inputs.n == 1:  # max_force_n, if set, narrows the one input's limits
            low, high = np.maximum(low, -self.max_force_n), np.minimum(high, self.max_force_n)
        return [*super()._pack(), *self.x_eq, *self._wraps, *self.u_eq, *low, *high,
                *k.ravel(), *p.ravel()]

    def compute(self, state: np.ndarray, t: float, target: np.ndarray | None = None) -> Any:
        """The input for `state`: a float for one input, else an array of one per input.
        With a `target` (the run's, docs/experiments.md) the law tracks it:
        u = u_eq - K (x - target), with the gains designed about the equilibrium."""
        if self._model is None:
            if target is None:
                return self._kernel(state, self._mem, self._g, self._o, self._p,
                                    self._scratch)
            return lqr_track_kernel(state, target, self._mem, self._o, self._p)
        u = self._u
        if target is None:
            lqr_plant_kernel(state, self._mem, self._o, u, self._dx)
        else:
            lqr_plant_track_kernel(state, target, self._mem, self._o, u, self._dx)
        return float(u[0]) if u.shape[0] == 1 else u.copy()

    def describe(self) -> dict[str, object]:
        d = super().describe()
        d["K"] = self.k.tolist()  # a list of floats for one input, of rows for several
        if self._model is not None:
            d["equilibrium_input"] = self.u_eq.tolist()
        return d


def _weights(defaults: tuple[float, ...], names: Sequence[str], n_r: int, q_option: Any,
             r_option: Any) -> tuple[float, ...]:
    """The default weights with the options `q` (one per state) and `r` (a number for one
    input, else one per input) in place; ValueError naming the option otherwise."""
    n = len(names)
    q, r = defaults[:n], defaults[n:]
    if q_option is not None:
        if isinstance(q_option, (str, bytes)) or not hasattr(q_option, "__len__") \
                or len(q_option) != n:
            raise ValueError(f"option q must be a list of {n} weights, one per state "
                             f"{list(names)}, got {q_option!r}")
        q = tuple(positive_option("q", v) for v in q_option)
    if r_option is not None:
        if n_r == 1 and not isinstance(r_option, (list, tuple)):
            r = (positive_option("r", r_option),)
        elif isinstance(r_option, (list, tuple)) and len(r_option) == n_r:
            r = tuple(positive_option("r", v) for v in r_option)
        else:
            raise ValueError(f"option r must be a list of {n_r} weights, one per input, got "
                             f"{r_option!r}")
    return (*q, *r)
