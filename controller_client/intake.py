"""The controller's state intake: the newest state not yet answered, and what happened to the
others (duplicates, states dropped unanswered, states flagged safe), with the state ->
controller leg of each state recorded once its answer is sent (off the critical path).

`on_state` is on the loop's hot path: it allocates nothing but the one leg it keeps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from controller_client.ports import Log
from hil.link import messages as msg
from hil.runtime.latency import LatencyMonitor

_FLAG_SAFE = msg.FLAG_SAFE
_FLAG_FINAL = msg.FLAG_FINAL


@dataclass(frozen=True)
class IntakeStatistics:
    received: int  # new states taken
    dropped: int  # states superseded before they were answered
    duplicates: int  # duplicate or reordered states (not newer than the newest)
    while_safe: int  # states flagged FLAG_SAFE: our controls were ignored
    safe_latches: int  # times the plant's states turned FLAG_SAFE
    final_state: list[float]  # the state flagged FLAG_FINAL, if one came


class StateIntake:
    """The newest state (`seq`, `t_ns` on our clock, `rx_ns`, `values`, `flags`) and the
    newest one answered (`answered_seq`): a state waits for its answer while
    `seq > answered_seq` (the loop reads the two fields: no call on its hot path)."""

    __slots__ = ("_latency", "_legs", "_log", "_offset_ns", "_plant_safe", "answered_seq",
                 "dropped", "duplicates", "final_state", "flags", "last_rx_ns", "received",
                 "rx_ns", "safe_latches", "seq", "t_ns", "values", "while_safe")

    def __init__(self, latency: LatencyMonitor, log: Log) -> None:
        self._latency = latency
        self._log = log
        self._offset_ns = 0  # plant clock - our clock
        self._legs: list[int] = []  # state -> controller legs not yet recorded
        self._plant_safe = False  # the newest state was flagged FLAG_SAFE
        self.seq = -1
        self.t_ns = 0
        self.rx_ns = 0
        self.values: list[float] = []
        self.flags = 0
        self.answered_seq = -1
        self.last_rx_ns = 0  # when the last state (new or not) came: the silence clock
        self.received = 0
        self.dropped = 0
        self.duplicates = 0
        self.while_safe = 0
        self.safe_latches = 0
        self.final_state: list[float] = []

    def start(self, clock_offset_ns: int, now_ns: int) -> None:
        """The session began at `now_ns` with this clock offset (plant - ours)."""
        self._offset_ns = clock_offset_ns
        self.last_rx_ns = now_ns

    def on_state(self, m: msg.Message, now: int) -> None:
        """A state message that came at `now` (our clock)."""
        seq = m["seq"]
        self.last_rx_ns = now
        if seq <= self.seq:
            self.duplicates += 1
            return
        self.received += 1
        if self.seq > self.answered_seq:
            self.dropped += 1  # an unanswered older state is superseded
        self.seq = seq
        t_ns = m["t_ns"] - self._offset_ns  # the plant's stamp, in our clock
        self.t_ns = t_ns
        self.rx_ns = now
        self.values = m["state"]
        flags = m["flags"]
        self.flags = flags
        if flags & _FLAG_SAFE:
            self.while_safe += 1
            if not self._plant_safe:
                self._latched(flags, seq)
        elif self._plant_safe:
            self._plant_safe = False
            self._log.info("plant left its safe state: under control again", seq=seq)
        self._legs.append(now - t_ns)
        if flags & _FLAG_FINAL:
            self.final_state = list(m["state"])

    def _latched(self, flags: int, seq: int) -> None:
        """Logged once per latch, not per state (nor per second)."""
        self._plant_safe = True
        self.safe_latches += 1
        self._log.warning("plant holds its safe state: controls are ignored until a clear "
                          "(hil clear)", flags=flags, seq=seq, latch=self.safe_latches)

    def answered(self) -> None:
        """The newest state's control is sent: record the legs that waited for it."""
        self.answered_seq = self.seq
        self.record_legs()

    def record_legs(self) -> None:
        legs = self._legs
        if legs:
            latency = self._latency
            for leg in legs:
                latency.record_ns("state_to_controller", leg)
            legs.clear()

    def statistics(self) -> IntakeStatistics:
        return IntakeStatistics(self.received, self.dropped, self.duplicates, self.while_safe,
                                self.safe_latches, list(self.final_state))

    def report_fields(self) -> dict[str, Any]:
        s = self.statistics()
        return {"states_received": s.received, "states_dropped": s.dropped,
                "states_while_safe": s.while_safe, "safe_latches": s.safe_latches,
                "final_state": s.final_state}
