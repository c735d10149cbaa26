"""The interface the controller loop needs of a control law."""

from __future__ import annotations

from typing import Protocol

import numpy as np


class ControlLaw(Protocol):
    """What `ControllerLoop` calls, once per control (see docs of controller_client.controllers).

    `sigma` and `mass_condition` feed the stability monitors; a law with no sliding surface
    or nominal model reports NaN for them.
    """

    def compute(self, state: np.ndarray, t: float) -> float:
        """The input for `state` at run time `t` (s)."""
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
