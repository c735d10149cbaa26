"""The typed seams of the controller loop: what it needs of the data plane, the recorder, the
stability monitor and the log (structural types: the real ones and a test's fit as they are)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from hil.link import messages as msg

Clock = Callable[[], int]


class ControllerDataPlane(Protocol):
    """States in, controls out: hil/link/dataplane.py's ZmqControllerData and
    ShmControllerData."""

    def take_state(self) -> msg.Message | None:
        """The newest state from shared memory, or None (over ZeroMQ states come on the
        socket)."""
        ...

    def send_control(self, seq: int, state_seq: int, u: list[float], t_state_rx_ns: int,
                     t_send_ns: int, compute_ns: int) -> None: ...

    def socket_turn(self) -> bool:
        """Should a drain read the ZeroMQ socket now?"""
        ...

    def wait_until(self, deadline_ns: int, on_readable: Callable[[], bool], spin_ns: int,
                   clock: Clock) -> None: ...

    def wait_for(self, timeout_ns: int, on_readable: Callable[[], bool], spin_ns: int,
                 clock: Clock) -> bool: ...

    def start_loop(self, pin: bool) -> None: ...

    def report(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


class RecorderStatistics(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


class Recorder(Protocol):
    """One row per control (hil.recording.recorder.Recorder)."""

    def record(self, row: Sequence[float]) -> None: ...

    def close(self) -> RecorderStatistics: ...


class Stability(Protocol):
    """hil.runtime.stability.StabilityMonitor: fed after each control is sent."""

    def update(self, sigma: float, u: Sequence[float], mass_condition: float) -> None: ...


class Log(Protocol):
    """A structlog logger, as hil.app.logs configures it."""

    def info(self, event: str, *args: Any, **kw: Any) -> Any: ...

    def warning(self, event: str, *args: Any, **kw: Any) -> Any: ...

    def error(self, event: str, *args: Any, **kw: Any) -> Any: ...
