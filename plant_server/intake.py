"""The attached controller's controls at the plant: which are judged valid, and their figures.

A control answers one published state (`state_seq`). It is rejected when it is stale (its
`seq` not above the last one taken: replayed or reordered), answers a state never published
(or a negative one), or in lockstep answers any state but the newest (the plant waits for
the newest one's answer and steps on it only: an older state's answer would change the
input without a step, and its sender would wait for a state that does not come); the plant
checks plausibility and the safe latch itself. For each control
applied, the intake keeps the round trip (that state's publication -> this arrival) and the
controller -> plant leg, held until the next publish so no histogram work sits between a
control's arrival and the next state; and which newest state has been answered (a deadline is
met when the state published before the tick was answered).
"""

from __future__ import annotations

import numpy as np

from hil.runtime.latency import LatencyMonitor

PUB_RING = 256  # publish times kept for round-trip matching (seq % ring)


class ControlIntake:
    """Sequence rules and latency samples of the attached controller's controls."""

    def __init__(self, latency: LatencyMonitor, lockstep: bool = False) -> None:
        self._latency = latency
        self._lockstep = lockstep
        self._pub_t = np.zeros(PUB_RING, dtype=np.int64)
        self._pending: list[tuple[str, int]] = []
        self.last_control_seq = -1
        self.answered_seq = -1  # newest state seq answered by an applied control
        self.round_trip_ns = -1  # of the newest applied control, for the recording
        self.applied = 0
        self.late = 0  # answered a state older than the newest
        self.while_safe = 0  # valid, but the plant held its safe output

    def published(self, seq: int, t_ns: int) -> None:
        self._pub_t[seq % PUB_RING] = t_ns

    def reset_peer(self) -> None:
        """A new controller replaced the attached one: its sequence starts afresh."""
        self.last_control_seq = -1

    def judge(self, seq: int, state_seq: int, newest_seq: int) -> tuple[str, str] | None:
        """(rejection kind, detail) for a control breaking the sequence rules, else None."""
        if seq <= self.last_control_seq:
            return "stale_control", f"seq {seq} <= {self.last_control_seq}"
        if state_seq > newest_seq or state_seq < 0:
            return "bad_state_seq", f"state_seq {state_seq}, newest state {newest_seq}"
        if self._lockstep and state_seq != newest_seq:
            return "not_newest", (f"lockstep: control seq {seq} answers state {state_seq}; "
                                  f"the plant waits for the answer to state {newest_seq}")
        return None

    def take(self, seq: int) -> None:
        """A control passed every check: later ones must have a higher seq."""
        self.last_control_seq = seq

    def note_applied(self, state_seq: int, t_send_ns: int, now: int, newest_seq: int) -> bool:
        """Figures of an applied control; True when it newly answers the newest state."""
        self.applied += 1
        pending = self._pending
        if state_seq > newest_seq - PUB_RING:
            self.round_trip_ns = now - int(self._pub_t[state_seq % PUB_RING])
            pending.append(("round_trip", self.round_trip_ns))
        pending.append(("controller_to_plant", now - t_send_ns))
        if state_seq < newest_seq:
            self.late += 1
        if state_seq > self.answered_seq:
            self.answered_seq = state_seq
            return state_seq == newest_seq
        return False

    def flush(self) -> None:
        """Put the held samples into the histograms (after a publish, off the critical path)."""
        record = self._latency.record_ns
        for figure, value in self._pending:
            record(figure, value)
        self._pending.clear()
