"""The interface every plant backend offers the plant loop (see the package docstring)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np


class PlantBackend(Protocol):
    """What `PlantServer` drives: a simulation (`SimBackend`) or a rig (`SerialBackend`)."""

    # The current state: a float64 vector owned by the backend (copy it to keep it).
    state: np.ndarray
    # Simulated (or rig) time since start, ns: the report's duration.
    sim_time_ns: int
    # None, or why the plant can no longer be trusted (checked every tick).
    fault: str | None

    def describe(self) -> dict[str, Any]:
        """Name, state names and units, limits, parameters: the handshake's description."""
        ...

    def align_start_ns(self, t_ns: int) -> int:
        """The first tick, moved so ticks follow a rig's own states."""
        ...

    def start(self, t_ns: int) -> None:
        """Put the plant's clock at `t_ns`; the initial state holds until then."""
        ...

    def apply(self, u: Sequence[float], t_ns: int) -> None:
        """From `t_ns` on, the plant's input is `u`, one float per input (zero-order hold)."""
        ...

    def advance(self, t_ns: int) -> np.ndarray:
        """Bring the plant to `t_ns` and return its state (a view owned by the backend)."""
        ...

    def close(self) -> None:
        """Release what the backend holds (port, threads)."""
        ...
