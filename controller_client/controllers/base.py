"""The Python side every control law shares: gains, options, persistent state, the kernel call.

A law is a stateful object. Its numba kernel has the signature

    kernel(state, mem, g, o, p, scratch) -> force_n

`mem` is the law's own state (sigma, cond(M), integrators, adapted gains), kept across
`compute` calls and reset only by `reset()`; `g` the gains, `o` the packed options, `p` the
nominal plant's packed parameters, `scratch` work rows. All are small float64 arrays
allocated once here, so a step allocates nothing in Python, and the same kernel runs inside
the compiled closed-loop simulations of `controller_client.tuning`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from controller_client.controllers.gains import check_gains, declared_bounds
from controller_client.controllers.nominal import MEM_CONDITION, MEM_SIGMA, SCRATCH_ROWS
from hil.dynamics.dip import DIPParams
from hil.dynamics.plugins import PluginError


def positive_option(name: str, value: Any) -> float:
    """`value` as a float, or a ValueError naming the option."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"option {name} must be a number, got {value!r}")
    f = float(value)
    if not (math.isfinite(f) and f > 0):
        raise ValueError(f"option {name} must be finite and > 0, got {value!r}")
    return f


def require_ordered(law: str, options: Mapping[str, float], *keys: str) -> None:
    """Raise ValueError unless options[keys[0]] <= options[keys[1]] <= ..."""
    values = [options[k] for k in keys]
    if any(a > b for a, b in itertools.pairwise(values)):
        raise ValueError(f"{law} needs {' <= '.join(keys)}, got "
                         f"{', '.join(f'{v:g}' for v in values)}")


class KernelLaw:
    """Base of the control laws. Subclasses set the class attributes and `_options()`."""

    name: ClassVar[str]
    gain_names: ClassVar[tuple[str, ...]]
    default_gains: ClassVar[tuple[float, ...]]
    # A range per gain name, {name: (low, high)}, checked on top of `check_gains`' own.
    gain_bounds: ClassVar[dict[str, tuple[float, float]] | None] = None
    kernel: ClassVar[Callable[..., float]]
    mem_size: ClassVar[int] = 2
    # The plant models (description names) the law's nominal model fits; None: any plant.
    fits: ClassVar[tuple[str, ...] | None] = ("dip",)
    # |sigma| below which a step is on the surface for the Lyapunov monitor (see hil/stability)
    sigma_floor: float = 1e-3

    def __init__(self, gains: Sequence[float] | None = None, *, max_force_n: float | None = None,
                 dt_s: float = 1e-3, model_params: Mapping[str, float] | None = None,
                 plant: Mapping[str, Any] | None = None, model: Any = None,
                 **options: Any) -> None:
        # `plant`: the plant's description (names, units, input limit); `model`: the plant
        # model itself (hil.dynamics), for laws that linearise it. Both optional.
        if plant is not None and self.fits is not None and plant.get("name") not in self.fits:
            raise PluginError(
                f"controller.name: {self.name} is designed for plant model "
                f"{', '.join(self.fits)} (the double inverted pendulum on a cart: its "
                f"sliding surface uses x, theta1, theta2); "
                f"this plant is {plant.get('name')!r} with states "
                f"{list(plant.get('state_names', []))}. Use lqr, which fits any plant, or a "
                f"law of your own (docs/extending.md)")
        self.plant = dict(plant) if plant is not None else None
        self.gains = self._checked(self.default_gains if gains is None else gains)
        self.params = DIPParams.from_mapping(model_params or {})
        self.max_force_n = positive_option(
            "max_force_n", self.params.max_force_n if max_force_n is None else max_force_n)
        self.dt_s = positive_option("dt_s", dt_s)
        self.options = self._options(options)  # raises on unknown or bad options
        self._g = np.array(self.gains, dtype=np.float64)
        self._p = self.params.as_array()
        self._o = np.array(self._pack(), dtype=np.float64)
        self._mem0 = np.zeros(self.mem_size)
        self._initial_mem(self._mem0)
        self._mem = self._mem0.copy()
        self._scratch = np.zeros((SCRATCH_ROWS, 6))
        self._shifted = np.zeros(6)  # the state relative to the target (compute)
        self._kernel = type(self).kernel

    # --- subclass hooks ----------------------------------------------------------------------
    def _options(self, options: dict[str, Any]) -> dict[str, float]:
        """Validate the law's own options (with defaults); raise ValueError naming a bad one."""
        if options:
            raise ValueError(f"{self.name} takes no option {sorted(options)[0]!r}")
        return {}

    def _pack(self) -> list[float]:
        """The packed option vector `o` for the kernel."""
        return [self.max_force_n, self.dt_s]

    def _initial_mem(self, mem: np.ndarray) -> None:
        """Initial values of the law's persistent state (zeros unless overridden)."""

    @staticmethod
    def take_options(name: str, options: dict[str, Any], defaults: Mapping[str, float]
                     ) -> dict[str, float]:
        unknown = sorted(set(options) - set(defaults))
        if unknown:
            raise ValueError(f"{name} has no option {unknown[0]!r}; its options: "
                             f"{', '.join(sorted(defaults))}, max_force_n, dt_s, model_params")
        return {k: positive_option(k, options.get(k, v)) for k, v in defaults.items()}

    # --- the law -----------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the run: integrators and adapted gains back to their initial values."""
        self._mem[:] = self._mem0

    def compute(self, state: np.ndarray, t: float, target: np.ndarray | None = None
                ) -> float:
        """Force (N, saturated at max_force_n) for `state`; `t` (s) is not used: the laws
        integrate with their fixed `dt_s`, so lockstep and realtime runs agree.

        With the run's `target` (docs/experiments.md) the cart tracks its position and speed:
        the law sees x - x_target and x_dot - x_dot_target (the pendulum's dynamics do not
        depend on where the cart is, so the shift is exact); the angles stay upright, whatever
        the target says of them."""
        if target is not None:
            shifted = self._shifted
            shifted[:] = state
            shifted[0] -= target[0]
            shifted[3] -= target[3]
            state = shifted
        return self._kernel(state, self._mem, self._g, self._o, self._p, self._scratch)

    @property
    def sigma(self) -> float:
        """The sliding variable at the last step (LQR: sqrt(x' P x))."""
        return float(self._mem[MEM_SIGMA])

    @property
    def mass_condition(self) -> float:
        """Condition number of the nominal mass matrix at the last step's state."""
        return float(self._mem[MEM_CONDITION])

    def kernel_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Fresh copies of (mem, g, o, p, scratch) for a compiled simulation of this law."""
        return (self._mem0.copy(), self._g.copy(), self._o.copy(), self._p.copy(),
                np.zeros_like(self._scratch))

    def set_gains(self, gains: Sequence[float]) -> None:
        """New gains from the next compute on (internal state kept); GainError or ValueError,
        and the old gains kept, if the law refuses them. Called between two computes."""
        new = self._checked(gains)
        old = (self.gains, self._g, self._o)
        try:
            self.gains = new
            self._g = np.array(new, dtype=np.float64)
            self._o = np.array(self._pack(), dtype=np.float64)
        except Exception:
            self.gains, self._g, self._o = old
            raise

    def _checked(self, gains: Sequence[float]) -> tuple[float, ...]:
        bounds = declared_bounds(self.name, self.gain_names, self.gain_bounds)
        return check_gains(self.name, self.gain_names, gains, bounds=bounds)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "gains": dict(zip(self.gain_names, self.gains, strict=True)),
                "options": dict(self.options), "max_force_n": self.max_force_n,
                "dt_s": self.dt_s}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(gains={list(self.gains)})"
