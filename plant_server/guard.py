"""The plant's safety side: what reaches the actuator, the safe latch, the watchdog, the
safety gates and the deadline scoring, on one time axis.

`Guard` applies every output (controls and safe outputs alike, so the slew limit and the
report know the actuator's value), latches the safe output on a watchdog expiry, a gate's
trip, a deadline gate's safe stop or a stop, and clears it only when the condition that
tripped no longer holds. It tells the plant node what happened (a watchdog trip: the
attached controller is lost) and never calls back into it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hil.runtime.watchdog import Watchdog
from plant_server.backends.base import PlantBackend
from plant_server.latch import MAX_LOGGED, SafeLatch
from plant_server.parts import Clock, Log
from plant_server.safety import SafetyEvent, SafetyGates
from plant_server.scoring import DeadlineScorer


@dataclass
class RunClock:
    """The run's time axes: the wall clock from t0 in realtime, simulated time in lockstep."""

    lockstep: bool
    t0_ns: int = 0
    sim_t_ns: int = 0  # the plant's time axis in lockstep (simulated ns)

    def backend_time(self, now: int) -> int:
        """The backend's time axis: the wall clock, or simulated time in lockstep."""
        return self.sim_t_ns if self.lockstep else now

    def run_time_s(self, now: int) -> float:
        """Seconds on the run clock: since t0, or simulated time in lockstep."""
        return self.sim_t_ns * 1e-9 if self.lockstep else (now - self.t0_ns) * 1e-9


class Guard:
    def __init__(self, backend: PlantBackend, gates: SafetyGates, watchdog: Watchdog,
                 scorer: DeadlineScorer, times: RunClock, log: Log, clock: Clock,
                 first_control_timeout_ns: int) -> None:
        self.backend = backend
        self.gates = gates
        self.watchdog = watchdog
        self.scorer = scorer
        self.latch = SafeLatch()
        self.times = times
        self._log = log
        self._clock = clock
        self._first_timeout_ns = first_control_timeout_ns
        self.u: list[float] = gates.safe_input(np.zeros(len(gates.state_names)))  # held now
        self.first_control_ns: int | None = None  # the first valid control (start-up over)
        self.watchdog_events: list[dict[str, Any]] = []
        # The safe output skips a simulated input delay (plant_server/backends/sim.py).
        self._apply_at_once = getattr(backend, "apply_safe", backend.apply)

    @property
    def under_control(self) -> bool:
        return self.first_control_ns is not None

    def apply(self, u: list[float], t: int) -> None:
        """From backend time `t` the actuators hold `u` (one float per input)."""
        self.backend.apply(u, t)
        self.gates.note_applied(u, t)
        self.u = u

    def apply_safe(self, u: list[float], t: int) -> None:
        """From backend time `t` the actuators hold the safe output `u`, at once."""
        self._apply_at_once(u, t)
        self.gates.note_applied(u, t)
        self.u = u

    def apply_control(self, u: list[float], now: int) -> None:
        """A valid control while not latched: limited by the gates, then applied."""
        t = self.times.backend_time(now)
        self.apply(self.gates.limit_input(u, t), t)

    def go_safe(self, reason: str, now: int, state: np.ndarray) -> bool:
        """Apply the safe output and latch; False (and nothing done) if already safe."""
        if not self.latch.latch(reason):
            return False
        self.apply_safe(self.gates.safe_input(state), self.times.backend_time(now))
        return True

    def trip(self, event: SafetyEvent, now: int, state: np.ndarray) -> None:
        """A safety or deadline gate tripped: safe output, latched."""
        self.go_safe(f"safety: {event.gate}", now, state)
        self._log.warning("safety gate tripped: safe output applied and latched",
                          gate=event.gate, value=event.value, limit=event.limit)

    def feed(self, now: int, state: np.ndarray) -> bool:
        """A valid control fed the watchdog; True when that feed found it newly expired."""
        if self.first_control_ns is None:
            self.first_control_ns = now
        if not self.watchdog.feed() and self.watchdog.latched:
            return self.watchdog_tripped(now, state)
        return False

    def check_watchdog(self, now: int, state: np.ndarray) -> bool:
        """True when the watchdog newly expired (the safe output is applied)."""
        return self.watchdog.check() and self.watchdog_tripped(now, state)

    def watchdog_tripped(self, now: int, state: np.ndarray) -> bool:
        """The watchdog has latched: safe output (once per trip), stamped for time-to-safe.
        False when this trip was handled already."""
        trip = self.watchdog.last_trip
        if trip is None or trip.safe_output_ns is not None:
            return False
        went_safe = self.go_safe("watchdog", now, state)
        self.watchdog.note_safe_output(max(self._clock(), trip.detected_ns))
        trip = self.watchdog.last_trip
        assert trip is not None
        startup = not self.under_control
        if len(self.watchdog_events) < MAX_LOGGED:
            self.watchdog_events.append({
                "time": self.times.run_time_s(trip.detected_ns),
                "time_to_safe_ms": trip.time_to_safe_ns / 1e6,
                "last_feed_ns": trip.last_feed_ns, "detected_ns": trip.detected_ns,
                "safe_output_ns": trip.safe_output_ns, "before_first_control": startup,
                "already_safe": self.latch.reason if not went_safe else None})
        timeout_ns = self._first_timeout_ns if startup else self.watchdog.timeout_ns
        self._log.warning("watchdog expired: safe output applied and latched",
                          timeout_ms=timeout_ns / 1e6, before_first_control=startup,
                          time_to_safe_ms=trip.time_to_safe_ns / 1e6)
        return True

    def check_state(self, values: list[float], state: np.ndarray, now: int) -> None:
        if not self.latch.safe:
            event = self.gates.check_state(values, self.times.run_time_s(now), now)
            if event is not None:
                self.trip(event, now, state)
        elif self.gates.limits.braking != "none":
            # The brake's force follows the cart's speed.
            self.apply_safe(self.gates.safe_input(state), self.times.backend_time(now))

    def score_deadline(self, met: bool, now: int, state: np.ndarray) -> None:
        if not self.under_control:
            self.scorer.skip_startup()
            return
        breach = self.scorer.score(met, self.latch.safe)
        if breach is not None:
            self.trip(self.gates.trip(breach.gate, self.times.run_time_s(now), now,
                                      breach.value, breach.limit), now, state)

    def clear(self, by: str, now: int, values: list[float]) -> tuple[bool, str]:
        """Clear the latched safe state unless the condition that tripped still holds:
        (cleared, what happened in words)."""
        reason = self.latch.reason
        if reason is None:
            return False, "nothing to clear"
        holds = self.gates.still_holds(values)
        if holds is not None:
            return False, f"cannot clear: {reason}: {holds}"
        self.watchdog.clear()
        self.scorer.gates.reset()
        cleared = self.latch.clear(by, self.times.run_time_s(now), now)
        self._log.warning("safe state cleared", by=by[:80], cleared=cleared)
        return True, f"cleared: {cleared}"
