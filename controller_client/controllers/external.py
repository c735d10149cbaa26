"""A lab's own control law behind the interface the loop uses (`ExternalLaw`).

The contract (docs/extending.md): a class built as `Class(gains, **context)` with
`compute(state, t) -> input` or `compute(state, t, target) -> input` (the run's target state:
docs/experiments.md); optional `gain_names`, `default_gains`, `gain_bounds`
({name: (low, high)}, checked with every gain change: controllers/gains.py), `reset()`,
`set_gains(gains)` (keeps internal state across a change; without it a change builds a new
instance), and `sigma` / `mass_condition` for the stability monitors. The context holds
`dt_s`, `max_force_n` (the input limit, in the plant's input unit), `plant` (the plant's
description), `model` (the plant model, for laws that linearise it) and the law's `options`.

The loop calls the law's own bound `compute` (no wrapper on the hot path). A law that raises
ends the run: the controller says bye (the plant goes safe) and the traceback goes to the log
and report.json.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from controller_client.controllers.gains import GainError, check_gains, declared_bounds
from hil.dynamics.plugins import PluginError


class ExternalLaw:
    """Wraps an instance of a lab's law class (see the module docstring)."""

    sigma_floor = 1e-3

    def __init__(self, cls: type, name: str, gains: Sequence[float] | None,
                 context: Mapping[str, Any]) -> None:
        if not isinstance(cls, type):
            raise PluginError(f"controller.name: {name!r} is {cls!r}, not a class")
        compute = getattr(cls, "compute", None)
        if not callable(compute):
            raise PluginError(f"controller.name: law class {cls.__name__} has no method "
                              f"compute(self, state, t) returning the input")
        if not _binds(compute, 2) and not _binds(compute, 3):
            raise PluginError(f"controller.name: {cls.__name__}.compute"
                              f"{inspect.signature(compute)} does not fit "
                              f"compute(self, state, t) or compute(self, state, t, target)")
        for optional, arity in (("reset", 0), ("set_gains", 1)):
            method = getattr(cls, optional, None)
            if method is None:
                continue
            try:
                inspect.signature(method).bind(None, *([()] * arity))
            except TypeError:
                wanted = "reset(self)" if arity == 0 else "set_gains(self, gains)"
                raise PluginError(f"controller.name: {cls.__name__}.{optional}"
                                  f"{inspect.signature(method)} does not fit {wanted}") from None
        self.name = name
        self.cls = cls
        self.gain_names = tuple(str(n) for n in getattr(cls, "gain_names", ()))
        defaults = tuple(getattr(cls, "default_gains", ()))
        if self.gain_names and defaults and len(defaults) != len(self.gain_names):
            raise PluginError(f"controller.name: {cls.__name__} has {len(self.gain_names)} "
                              f"gain_names but {len(defaults)} default_gains")
        self.default_gains = defaults
        self.context = dict(context)
        self.max_force_n = float(self.context["max_force_n"])
        self.dt_s = float(self.context["dt_s"])
        self.options = dict(self.context.get("options", {}))
        try:
            self.gain_bounds = declared_bounds(name, self.gain_names,
                                               getattr(cls, "gain_bounds", None))
        except GainError as exc:
            raise PluginError(f"controller.name: {exc}") from None
        self.gains = self._checked(defaults if gains is None else gains)
        self.law = self._build(self.gains)
        self.compute = self.law.compute  # the law's own bound method: nothing in between
        self._reset = getattr(self.law, "reset", None)

    def _build(self, gains: tuple[float, ...]) -> Any:
        try:
            return self.cls(gains, **self.context)
        except PluginError:  # the law does not fit this plant or its options: it says why
            raise
        except TypeError as exc:
            raise PluginError(
                f"controller.name: {self.cls.__name__}(gains, **context) failed: {exc}. Its "
                f"__init__{inspect.signature(self.cls.__init__)} must take the gains and "
                f"**context (dt_s, max_force_n, plant, model, options)") from None
        except ValueError as exc:
            raise GainError(f"{self.name} refused the gains {list(gains)}: {exc}") from None

    def _checked(self, gains: Any) -> tuple[float, ...]:
        """Finite numbers of a sane magnitude, as many as `gain_names` (when the law names
        them), within the law's `gain_bounds`; GainError otherwise (controllers/gains.py)."""
        return check_gains(self.name, self.gain_names, gains, positive=False,
                           bounds=self.gain_bounds)

    def reset(self) -> None:
        if self._reset is not None:
            self._reset()

    def set_gains(self, gains: Sequence[float]) -> None:
        """Validate and apply; GainError (old gains kept) if the law refuses them."""
        new = self._checked(gains)
        set_gains = getattr(self.law, "set_gains", None)
        if set_gains is not None:
            try:
                set_gains(new)
            except (ValueError, TypeError) as exc:
                raise GainError(f"{self.name} refused the gains {list(new)}: {exc}") from None
        else:
            self.law = self._build(new)
            self.compute = self.law.compute
            self._reset = getattr(self.law, "reset", None)
        self.gains = new

    @property
    def sigma(self) -> float:
        return float(getattr(self.law, "sigma", math.nan))

    @property
    def mass_condition(self) -> float:
        return float(getattr(self.law, "mass_condition", math.nan))

    def describe(self) -> dict[str, Any]:
        names = self.gain_names or tuple(f"#{i}" for i in range(len(self.gains)))
        return {"name": self.name, "gains": dict(zip(names, self.gains, strict=True)),
                "options": {k: v for k, v in self.options.items()
                            if isinstance(v, (int, float, str, bool))},
                "max_force_n": self.max_force_n, "dt_s": self.dt_s}


def _binds(method: Any, n_args: int) -> bool:
    """Whether the unbound `method` takes self and `n_args` positional arguments."""
    try:
        inspect.signature(method).bind(None, np.zeros(1), 0.0, *([np.zeros(1)] * (n_args - 2)))
    except TypeError:
        return False
    return True
