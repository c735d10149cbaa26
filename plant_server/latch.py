"""The plant's safe latch: why it holds its safe output, the e-stop, and the clears.

The latch only keeps the record; the plant applies the safe output itself when `latch`
returns True (newly latched). Reasons are strings the report and the `state` flags show:
"watchdog", "safety: <gate>", "estop: <reason>", "controller left", "stopped by a signal".
"""

from __future__ import annotations

from typing import Any

from hil.link import messages as msg

MAX_LOGGED = 100  # clears kept in the report; all are counted


class SafeLatch:
    """Latched safe reason (None: under control) until a clear; the e-stop, once."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.estop_reason: str | None = None
        self.clears = 0
        self._clear_events: list[dict[str, Any]] = []

    @property
    def safe(self) -> bool:
        return self.reason is not None

    def latch(self, reason: str) -> bool:
        """Latch `reason`; False (and the first reason kept) if already latched."""
        if self.reason is not None:
            return False
        self.reason = reason
        return True

    def estop(self, reason: str) -> bool:
        """Note an e-stop; True for the first one (the run ends on it)."""
        if self.estop_reason is not None:
            return False
        self.estop_reason = reason
        return True

    def clear(self, by: str, time_s: float, t_ns: int) -> str:
        """Unlatch; the reason that was cleared. The caller checked that it may be."""
        cleared = self.reason
        assert cleared is not None
        self.reason = None
        self.clears += 1
        if len(self._clear_events) < MAX_LOGGED:
            self._clear_events.append({"time": time_s, "t_ns": t_ns, "by": by[:80],
                                       "cleared": cleared})
        return cleared

    def flags(self, watchdog_latched: bool) -> int:
        """The `state` message's flags for this latch."""
        flags = 0
        reason = self.reason
        if reason is not None:
            flags |= msg.FLAG_SAFE
            if reason.startswith("safety"):
                flags |= msg.FLAG_SAFETY
        if watchdog_latched:
            flags |= msg.FLAG_WATCHDOG
        return flags

    def report(self) -> dict[str, Any]:
        """The safety section's latch entries: clears, clear_events, estop."""
        return {"clears": self.clears, "clear_events": list(self._clear_events),
                "estop": self.estop_reason}
