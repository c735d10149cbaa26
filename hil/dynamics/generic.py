"""A lab's own plant model, made into what the plant loop simulates (`ExternalModel`).

The contract (docs/extending.md): a class with `state_names`, `state_units` and
`derivatives(state, u) -> d state / dt`, built as `Class(**plant.params)`. Optional:
`input_name` and `input_unit` (default "force", "N"), `input_limit` (or `max_force_n`; the
input is saturated there), `equilibrium` (default zeros), and `derivatives_kernel`, a numba
function `f(state, u, out)` writing d state / dt into `out` that makes each step compiled.

The runtime integrates the model with classic RK4 and `plant.substeps` substeps per step,
the input held constant and saturated at its limit, as for the built-in models.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from numba import njit

from hil.dynamics.base import describe_plant
from hil.dynamics.plugins import PluginError


@njit(cache=True)
def _rk4_compiled(f: Any, state: np.ndarray, u: float, dt_s: float, substeps: int,
                  out: np.ndarray, k1: np.ndarray, k2: np.ndarray, k3: np.ndarray,
                  k4: np.ndarray, tmp: np.ndarray) -> None:
    """RK4 with a compiled derivative function `f(state, u, out)`; no allocation."""
    h = dt_s / substeps
    n = state.shape[0]
    for i in range(n):
        out[i] = state[i]
    for _ in range(substeps):
        f(out, u, k1)
        for i in range(n):
            tmp[i] = out[i] + 0.5 * h * k1[i]
        f(tmp, u, k2)
        for i in range(n):
            tmp[i] = out[i] + 0.5 * h * k2[i]
        f(tmp, u, k3)
        for i in range(n):
            tmp[i] = out[i] + h * k3[i]
        f(tmp, u, k4)
        for i in range(n):
            out[i] += h / 6.0 * (k1[i] + 2.0 * (k2[i] + k3[i]) + k4[i])


def _names(cls: type, attr: str, key: str) -> tuple[str, ...]:
    value = getattr(cls, attr, None)
    if value is None:
        raise PluginError(f"{key}: plant class {cls.__name__} has no {attr}; give it a tuple "
                          f"of strings, e.g. {attr} = (\"x\", \"theta\", \"x_dot\", \"theta_dot\")")
    if isinstance(value, str) or not all(isinstance(v, str) for v in value):
        raise PluginError(f"{key}: {cls.__name__}.{attr} must be a tuple of strings, "
                          f"got {value!r}")
    return tuple(value)


class ExternalModel:
    """A plant class of a lab's own behind the interface of `hil.dynamics.base.PlantModel`."""

    def __init__(self, cls: type, params: Mapping[str, Any], substeps: int, key: str) -> None:
        if not isinstance(cls, type):
            raise PluginError(f"{key}: {cls!r} is not a class")
        self.name = f"{cls.__module__}:{cls.__qualname__}"
        self.state_names = _names(cls, "state_names", key)
        self.state_units = _names(cls, "state_units", key)
        n = len(self.state_names)
        if len(self.state_units) != n:
            raise PluginError(f"{key}: {cls.__name__} has {n} state_names but "
                              f"{len(self.state_units)} state_units; give one unit per state")
        derivatives = getattr(cls, "derivatives", None)
        if not callable(derivatives):
            raise PluginError(f"{key}: plant class {cls.__name__} has no method "
                              f"derivatives(self, state, u) returning d state / dt")
        try:
            inspect.signature(derivatives).bind(None, np.zeros(n), 0.0)
        except TypeError:
            raise PluginError(
                f"{key}: {cls.__name__}.derivatives{inspect.signature(derivatives)} does not "
                f"fit derivatives(self, state, u)") from None
        except ValueError:
            pass  # a builtin or compiled callable without a signature: tried at check_at
        try:
            self.instance = cls(**dict(params))
        except TypeError as exc:
            raise PluginError(f"plant.params: {cls.__name__}(**plant.params) failed: {exc}; "
                              f"its __init__{inspect.signature(cls)} takes the "
                              f"plant.params keys as keyword arguments") from None
        except ValueError as exc:
            raise PluginError(f"plant.params: {cls.__name__} refused them: {exc}") from None
        inst = self.instance
        self.input_name = str(getattr(inst, "input_name", "force"))
        self.input_unit = str(getattr(inst, "input_unit", "N"))
        limit = getattr(inst, "input_limit", getattr(inst, "max_force_n", None))
        if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not (
                math.isfinite(limit) and limit > 0):
            raise PluginError(f"{key}: {cls.__name__} needs input_limit (or max_force_n): the "
                              f"finite, positive saturation of its input "
                              f"({self.input_name}, {self.input_unit}), got {limit!r}")
        self._limit = float(limit)
        eq = np.array(getattr(inst, "equilibrium", np.zeros(n)), dtype=np.float64)
        if eq.shape != (n,) or not np.all(np.isfinite(eq)):
            raise PluginError(f"{key}: {cls.__name__}.equilibrium must be {n} finite numbers, "
                              f"got {getattr(inst, 'equilibrium', None)!r}")
        self._equilibrium = eq
        if isinstance(substeps, bool) or not isinstance(substeps, int) or substeps < 1:
            raise ValueError(f"substeps must be an int >= 1, got {substeps!r}")
        self.substeps = substeps
        self.params = dict(params)
        self._f = inst.derivatives
        self._kernel = getattr(cls, "derivatives_kernel", None)
        self._work = np.zeros((5, n))
        self._key = key

    @property
    def max_force_n(self) -> float:
        return self._limit

    @property
    def equilibrium(self) -> np.ndarray:
        return self._equilibrium.copy()

    def check_at(self, state: Any) -> None:
        """Call `derivatives` once at `state` with zero input: PluginError unless it returns
        len(state_names) finite numbers (and the same from `derivatives_kernel`, if any)."""
        x = np.array(state, dtype=np.float64)
        n = len(self.state_names)
        try:
            d = np.asarray(self._f(x.copy(), 0.0), dtype=np.float64)
        except Exception as exc:
            raise PluginError(f"{self._key}: {self.name}.derivatives(initial_state, 0.0) "
                              f"raised {type(exc).__name__}: {exc}") from None
        if d.shape != (n,):
            raise PluginError(f"{self._key}: {self.name}.derivatives returned shape {d.shape} "
                              f"at plant.initial_state; it must return {n} numbers, one per "
                              f"state {list(self.state_names)}")
        if not np.all(np.isfinite(d)):
            bad = [self.state_names[i] for i in np.flatnonzero(~np.isfinite(d))]
            raise PluginError(f"{self._key}: {self.name}.derivatives returned non-finite "
                              f"values for d {', d '.join(bad)}/dt at plant.initial_state "
                              f"{x.tolist()}")
        if self._kernel is not None:
            out = np.zeros(n)
            try:
                self._kernel(x, 0.0, out)
            except Exception as exc:
                raise PluginError(f"{self._key}: {self.name}.derivatives_kernel(state, u, out) "
                                  f"raised {type(exc).__name__}: {exc}") from None
            if not np.allclose(out, d, rtol=1e-9, atol=1e-12):
                raise PluginError(f"{self._key}: {self.name}.derivatives_kernel disagrees "
                                  f"with derivatives at plant.initial_state: {out.tolist()} vs "
                                  f"{d.tolist()}")

    def derivatives(self, state: Any, force: float) -> np.ndarray:
        return np.asarray(self._f(np.asarray(state, dtype=np.float64), float(force)),
                          dtype=np.float64)

    def step(self, state: np.ndarray, force: float, dt_s: float, out: np.ndarray) -> None:
        """RK4 over `dt_s` in `substeps` steps, the input saturated and held."""
        u = min(max(float(force), -self._limit), self._limit)
        k1, k2, k3, k4, tmp = self._work
        if self._kernel is not None:
            _rk4_compiled(self._kernel, state, u, dt_s, self.substeps, out, k1, k2, k3, k4, tmp)
            return
        f = self._f
        h = dt_s / self.substeps
        y = state.copy()
        for _ in range(self.substeps):
            k1 = f(y, u)
            k2 = f(y + 0.5 * h * k1, u)
            k3 = f(y + 0.5 * h * k2, u)
            k4 = f(y + h * k3, u)
            y = y + h / 6.0 * (k1 + 2.0 * (k2 + k3) + k4)
        out[:] = y

    def describe(self) -> dict[str, Any]:
        params = {k: v for k, v in self.params.items() if isinstance(v, (int, float, str, bool))}
        return describe_plant(self, params, getattr(self.instance, "upright_angles", None))
