"""The interface the controller loop needs of a control law."""

from __future__ import annotations

import inspect
from typing import Any, Protocol

import numpy as np


class ControlLaw(Protocol):
    """What `ControllerLoop` calls, once per control (see docs of controller_client.controllers).

    `sigma` and `mass_condition` feed the stability monitors; a law with no sliding surface
    or nominal model reports NaN for them.
    """

    def compute(self, state: np.ndarray, t: float) -> float:
        """The input for `state` at run time `t` (s). A law may also take the run's target,
        `compute(state, t, target)` (see `takes_target`)."""
        ...

    def reset(self) -> None:
        """Forget internal state (integrators, adapted gains) before a new attach."""
        ...

    @property
    def sigma(self) -> float:
        """The sliding variable of the last compute, or NaN."""
        ...

    @property
    def mass_condition(self) -> float:
        """cond(M) of the nominal model at the last compute, or NaN."""
        ...


def takes_target(law: Any) -> bool:
    """True when `law.compute` takes `(state, t, target)`: the loop then passes the run's
    target (the plant's equilibrium with the experiment's references applied, a float64
    vector of one entry per state, overwritten at the next control: copy it to keep it).
    Decided once, when the law is loaded, never per control."""
    try:
        inspect.signature(law.compute).bind(np.zeros(1), 0.0, np.zeros(1))
    except TypeError:
        return False
    except ValueError:  # no signature to read (a builtin): the two-argument contract
        return False
    return True


def needs_target(law: Any) -> bool:
    """True when `law.compute` cannot be called without the target (its third parameter has
    no default): such a law gets one even in a run without references (the equilibrium)."""
    if not takes_target(law):
        return False
    try:
        inspect.signature(law.compute).bind(np.zeros(1), 0.0)
    except TypeError:
        return True
    return False
