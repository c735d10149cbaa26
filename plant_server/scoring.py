"""Deadline scoring at the plant: each published state was answered in time, or missed.

A state's deadline is the next tick: a control answering it must have been applied by then.
Misses while the plant is latched safe (it ignores controls then) are counted apart; they stay
in the miss ratio (the run failed) but never trip a gate again. States published before the
controller's first control (its start-up) are not scored: they are counted in
`before_first_control` and the start-up time is the watchdog's start budget.
"""

from __future__ import annotations

from typing import Any

from hil.runtime.deadline_gates import Breach, DeadlineGates
from hil.runtime.latency import LatencyMonitor


class DeadlineScorer:
    """Feeds the latency monitor's deadline counts and the deadline gates."""

    def __init__(self, latency: LatencyMonitor, gates: DeadlineGates) -> None:
        self._latency = latency
        self.gates = gates
        self.misses_while_safe = 0
        self.before_first_control = 0

    def score(self, met: bool, safe: bool) -> Breach | None:
        """Score one deadline; the gate breach it causes (only while under control)."""
        self._latency.record_deadline(met)
        if safe:
            self.misses_while_safe += not met
            return None
        return self.gates.record(met)

    def skip_startup(self) -> None:
        """A state published before the first control: not a deadline of the controller's."""
        self.before_first_control += 1

    def report(self) -> dict[str, Any]:
        return {"misses_while_safe": self.misses_while_safe,
                "before_first_control": self.before_first_control}
