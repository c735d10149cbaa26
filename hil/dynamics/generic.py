"""A lab's own plant model, made into what the plant loop simulates (`ExternalModel`).

The contract (docs/extending.md): a class with `state_names`, `state_units` (1 ..
`MAX_STATES` states) and `derivatives(state, u) -> d state / dt`, built as
`Class(**plant.params)`. Its inputs are either

- several (or one): `input_names`, `input_units` and `input_limits` (per input L, meaning
  -L..L, or (low, high)); `derivatives` then gets `u` as a float64 array, one entry per input;
- or one, as before: `input_name` and `input_unit` (default "force", "N") and `input_limit`
  (or `max_force_n`); `derivatives` then gets `u` as a float.

Optional: `equilibrium` (the state to hold, default zeros), `equilibrium_input` (the trim
that holds it; found by `hil.dynamics.contract.find_trim` when absent), `regulated_states`
(default: positions and angles; `upright_angles` as before), `wrapping_states` (angles
compared modulo 2 pi; default none), and `derivatives_kernel`, a numba function
`f(state, u, out)` writing d state / dt into `out` (u as `derivatives` gets it) that makes
each step compiled.

The runtime integrates the model with classic RK4 and `plant.substeps` substeps per step,
the inputs held constant and each saturated at its limits, as for the built-in models.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from numba import njit

from hil.dynamics.base import describe_plant
from hil.dynamics.contract import Trim, default_regulated, find_trim, named_states, trim_at
from hil.dynamics.inputs import MAX_STATES, FirstInputNames, Inputs, InputsError
from hil.dynamics.plugins import PluginError


@njit(cache=True)
def rk4_compiled(f: Any, state: np.ndarray, u: Any, dt_s: float, substeps: int,
                 out: np.ndarray, k1: np.ndarray, k2: np.ndarray, k3: np.ndarray,
                 k4: np.ndarray, tmp: np.ndarray) -> None:
    """RK4 with a compiled derivative function `f(state, u, out)`; no allocation. `u` is a
    float or a float64 array (numba compiles one specialisation for each). The plant loop
    (`ExternalModel.step`) and the tuning's compiled batch (f a cfunc) both step a lab's
    plant with it."""
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


def _inputs(inst: Any, cls: type, key: str) -> tuple[Inputs, bool]:
    """The plant's inputs and whether `derivatives` takes them as an array."""
    where = f"{key}: {cls.__name__}"
    if getattr(inst, "input_names", None) is not None:
        limits = getattr(inst, "input_limits", None)
        if limits is None:
            raise PluginError(f"{where} declares input_names but no input_limits; give one "
                              f"per input, L (meaning -L..L) or (low, high)")
        try:
            return Inputs.declared(inst.input_names, getattr(inst, "input_units", None),
                                   limits, where=where), True
        except InputsError as exc:
            raise PluginError(str(exc)) from None
    if getattr(inst, "input_limits", None) is not None:
        raise PluginError(f"{where} declares input_limits but no input_names; name each "
                          f"input: input_names = (...), input_units = (...)")
    name = str(getattr(inst, "input_name", "force"))
    unit = str(getattr(inst, "input_unit", "N"))
    limit = getattr(inst, "input_limit", getattr(inst, "max_force_n", None))
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not (
            math.isfinite(limit) and limit > 0):
        raise PluginError(f"{where} needs input_limit (or max_force_n): the finite, positive "
                          f"saturation of its input ({name}, {unit}), got {limit!r}; or, for "
                          f"several inputs, input_names, input_units and input_limits")
    return Inputs.single(name, unit, float(limit)), False


def _vector(inst: Any, attr: str, size: int, what: str, where: str) -> np.ndarray | None:
    """The plant's `attr` as `size` finite floats (None if it declares none)."""
    declared = getattr(inst, attr, None)
    if declared is None:
        return None
    try:
        array = np.array(declared, dtype=np.float64)
    except (TypeError, ValueError):
        array = np.empty(0)
    if array.shape != (size,) or not np.all(np.isfinite(array)):
        raise PluginError(f"{where}.{attr} must be {size} finite numbers, one per {what}, "
                          f"got {declared!r}")
    return array


def _states(inst: Any, attr: str, names: tuple[str, ...], where: str) -> tuple[str, ...] | None:
    declared = getattr(inst, attr, None)
    if declared is None:
        return None
    try:
        return named_states(declared, names, attr, where)
    except ValueError as exc:
        raise PluginError(str(exc)) from None


class ExternalModel(FirstInputNames):
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
        if not 1 <= n <= MAX_STATES:
            raise PluginError(f"{key}: {cls.__name__} has {n} states; a plant has 1 to "
                              f"{MAX_STATES} (MAX_STATES, the wire's vector limit): model "
                              f"fewer states or split the plant")
        self._check_signature(cls, key)
        self.instance = _instance(cls, params)
        self._key = key
        self._setup(self.instance, cls)
        if isinstance(substeps, bool) or not isinstance(substeps, int) or substeps < 1:
            raise ValueError(f"substeps must be an int >= 1, got {substeps!r}")
        self.substeps = substeps
        self.params = dict(params)
        self._f = self.instance.derivatives
        self._kernel = getattr(cls, "derivatives_kernel", None)
        self._work = np.zeros((5, n))
        self._trim: Trim | None = None

    def _check_signature(self, cls: type, key: str) -> None:
        derivatives = getattr(cls, "derivatives", None)
        if not callable(derivatives):
            raise PluginError(f"{key}: plant class {cls.__name__} has no method "
                              f"derivatives(self, state, u) returning d state / dt")
        try:
            inspect.signature(derivatives).bind(None, np.zeros(len(self.state_names)), 0.0)
        except TypeError:
            raise PluginError(
                f"{key}: {cls.__name__}.derivatives{inspect.signature(derivatives)} does not "
                f"fit derivatives(self, state, u)") from None
        except ValueError:
            pass  # a builtin or compiled callable without a signature: tried at check_at

    def _setup(self, inst: Any, cls: type) -> None:
        """Inputs, equilibrium, trim, regulated and wrapping states, as the plant declares."""
        where = f"{self._key}: {cls.__name__}"
        self.inputs, self._vector = _inputs(inst, cls, self._key)
        self._low, self._high = np.array(self.inputs.low), np.array(self.inputs.high)
        n = len(self.state_names)
        eq = _vector(inst, "equilibrium", n, f"state {list(self.state_names)}", where)
        self._equilibrium = np.zeros(n) if eq is None else eq
        trim = _vector(inst, "equilibrium_input", self.inputs.n,
                       f"input {list(self.inputs.names)}", where)
        if trim is not None and not np.all((trim >= self._low) & (trim <= self._high)):
            raise PluginError(f"{where}.equilibrium_input {trim.tolist()} is outside the "
                              f"input_limits {self.inputs.describe()['input_limits']}; a trim "
                              f"the inputs cannot give cannot hold the equilibrium")
        self._declared_trim = trim
        upright = _states(inst, "upright_angles", self.state_names, where)
        regulated = _states(inst, "regulated_states", self.state_names, where)
        self.regulated = regulated if regulated is not None else upright if upright is not None \
            else default_regulated(self.state_names, self.state_units)
        self.wraps = _states(inst, "wrapping_states", self.state_names, where) or ()
        self._upright = upright

    @property
    def equilibrium(self) -> np.ndarray:
        return self._equilibrium.copy()

    @property
    def takes_vector(self) -> bool:
        """Whether `derivatives` (and the kernel) take the inputs as an array, not a float."""
        return self._vector

    @property
    def derivatives_kernel(self) -> Any:
        """The plant's compiled `derivatives_kernel(state, u, out)`, or None."""
        return self._kernel

    def trim(self) -> Trim:
        """The declared trim and how well it holds the equilibrium, or the one found (once)."""
        if self._trim is None:
            try:
                if self._declared_trim is not None:
                    self._trim = trim_at(self._vector_derivatives, self._equilibrium,
                                         self.inputs, self._declared_trim)
                else:
                    self._trim = find_trim(self._vector_derivatives, self._equilibrium,
                                           self.inputs)
            except Exception as exc:
                self._trim = Trim(np.full(self.inputs.n, np.nan), math.inf, math.nan, False,
                                  f"{self.name}.derivatives raised {type(exc).__name__} at "
                                  f"the equilibrium {self._equilibrium.tolist()}: {exc}")
        return self._trim

    @property
    def equilibrium_input(self) -> np.ndarray | None:
        """The input that holds the equilibrium (declared, else found); None if none does."""
        trim = self.trim()
        return trim.u.copy() if trim.found else None

    def _vector_derivatives(self, state: np.ndarray, u: np.ndarray) -> np.ndarray:
        return self.derivatives(state, u)

    def _plant_input(self, u: Any) -> Any:
        """`u` as the plant's derivatives take it: an array of its inputs, or a float."""
        array = np.ascontiguousarray(u, dtype=np.float64).reshape(-1)
        if array.shape != (self.inputs.n,):
            raise ValueError(f"{self.name} has {self.inputs.n} input(s) "
                             f"{list(self.inputs.names)}: u must have {self.inputs.n} "
                             f"entries, got shape {np.shape(u)}")
        return array if self._vector else float(array[0])

    def check_at(self, state: Any) -> None:
        """Call `derivatives` once at `state` with zero input: PluginError unless it returns
        len(state_names) finite numbers (and the same from `derivatives_kernel`, if any)."""
        x = np.array(state, dtype=np.float64)
        u0 = self._plant_input(np.zeros(self.inputs.n))
        d = self._call_derivatives(x, u0)
        n = len(self.state_names)
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
            self._check_kernel(x, u0, d)

    def _call_derivatives(self, x: np.ndarray, u0: Any) -> np.ndarray:
        what = (f"u = zeros({self.inputs.n}), a float64 array, one entry per input "
                f"{list(self.inputs.names)}" if self._vector else "u = 0.0")
        try:
            return np.asarray(self._f(x.copy(), u0), dtype=np.float64)
        except Exception as exc:
            hint = ""
            if not self._vector and isinstance(exc, (TypeError, IndexError)):
                hint = ("; a plant of several inputs declares input_names, input_units and "
                        "input_limits, and then gets u as an array (docs/extending.md)")
            elif self._vector:
                hint = "; index the inputs as u[0], u[1], ... (u is an array)"
            raise PluginError(f"{self._key}: {self.name}.derivatives(initial_state, u) with "
                              f"{what} raised {type(exc).__name__}: {exc}{hint}") from None

    def _check_kernel(self, x: np.ndarray, u0: Any, d: np.ndarray) -> None:
        out = np.zeros(len(self.state_names))
        try:
            self._kernel(x, u0, out)  # type: ignore[misc]  # checked not None by the caller
        except Exception as exc:
            raise PluginError(f"{self._key}: {self.name}.derivatives_kernel(state, u, out) "
                              f"raised {type(exc).__name__}: {exc}") from None
        if not np.allclose(out, d, rtol=1e-9, atol=1e-12):
            raise PluginError(f"{self._key}: {self.name}.derivatives_kernel disagrees "
                              f"with derivatives at plant.initial_state: {out.tolist()} vs "
                              f"{d.tolist()}")

    def derivatives(self, state: Any, u: Any) -> np.ndarray:
        """d state / dt at `state` under `u` (a float or one number per input, not
        saturated)."""
        return np.asarray(self._f(np.asarray(state, dtype=np.float64), self._plant_input(u)),
                          dtype=np.float64)

    def step(self, state: np.ndarray, u: Any, dt_s: float, out: np.ndarray) -> None:
        """RK4 over `dt_s` in `substeps` steps, each input saturated at its limits and held."""
        held = self._plant_input(u)
        if self._vector:
            held = np.minimum(np.maximum(held, self._low), self._high)
        else:
            held = min(max(held, self.inputs.low[0]), self.inputs.high[0])
        k1, k2, k3, k4, tmp = self._work
        if self._kernel is not None:
            rk4_compiled(self._kernel, state, held, dt_s, self.substeps, out, k1, k2, k3, k4,
                         tmp)
            return
        f = self._f
        h = dt_s / self.substeps
        y = state.copy()
        for _ in range(self.substeps):
            k1 = f(y, held)
            k2 = f(y + 0.5 * h * k1, held)
            k3 = f(y + 0.5 * h * k2, held)
            k4 = f(y + h * k3, held)
            y = y + h / 6.0 * (k1 + 2.0 * (k2 + k3) + k4)
        out[:] = y

    def describe(self) -> dict[str, Any]:
        params = {k: v for k, v in self.params.items() if isinstance(v, (int, float, str, bool))}
        return describe_plant(self, params, self._upright)


def _instance(cls: type, params: Mapping[str, Any]) -> Any:
    try:
        return cls(**dict(params))
    except TypeError as exc:
        raise PluginError(f"plant.params: {cls.__name__}(**plant.params) failed: {exc}; "
                          f"its __init__{inspect.signature(cls)} takes the "
                          f"plant.params keys as keyword arguments") from None
    except ValueError as exc:
        raise PluginError(f"plant.params: {cls.__name__} refused them: {exc}") from None
