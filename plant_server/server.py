"""The plant loop: owns the plant clock, serves one controller, applies the latest valid control.

Each plant period the loop (1) advances the plant to this tick's grid time, integrating
piecewise so each control acts from the moment it arrived (zero-order hold between
arrivals, as on a rig), (2) scores the previous state's deadline, (3) checks the watchdog,
(4) publishes the state, then (5) waits for the next tick while handling incoming messages
as they arrive, so each control is timestamped on arrival.

In `lockstep` mode the plant instead advances one period per control that answers the
newest state: deterministic and as fast as the link allows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hil import messages as msg
from hil.latency import LatencyMonitor
from hil.schedule import Schedule
from hil.transport import PlantSocket, wait_for_message, wait_until
from hil.watchdog import Watchdog

PLANT_FIGURES = ("round_trip", "controller_to_plant", "plant_lateness")
_PUB_RING = 256  # publish times kept for round-trip matching (seq % ring)


@dataclass
class PlantSettings:
    mode: str
    period_ns: int
    duration_s: float
    start_delay_ns: int
    watchdog_timeout_ns: int
    attach_timeout_ns: int
    safe_force_n: float = 0.0
    spin_ns: int = 100_000


@dataclass
class PlantCounters:
    controls_applied: int = 0
    controls_late: int = 0
    saturations: int = 0
    rejected_by_kind: dict[str, int] = field(default_factory=dict)

    def reject(self, kind: str) -> None:
        self.rejected_by_kind[kind] = self.rejected_by_kind.get(kind, 0) + 1

    @property
    def rejected_total(self) -> int:
        return sum(self.rejected_by_kind.values())


class PlantServer:
    """Serves `backend` on `sock`. `stop_requested()` is polled once per tick."""

    def __init__(
        self,
        backend: Any,
        sock: PlantSocket,
        settings: PlantSettings,
        log: Any,
        stop_requested: Callable[[], bool] = lambda: False,
        clock: Callable[[], int] = time.monotonic_ns,
        recorder: Any = None,
    ) -> None:
        self.backend = backend
        # hil.recorder.Recorder with hil.recorder.plant_columns: one row per published state.
        # The caller closes it.
        self.recorder = recorder
        self._lateness_ns = 0
        self.state = backend.state
        self.initial_state = backend.state.copy()
        self.sock = sock
        self.s = settings
        self.log = log
        self.stop_requested = stop_requested
        self.clock = clock
        self.latency = LatencyMonitor(PLANT_FIGURES)
        self.watchdog = Watchdog(settings.watchdog_timeout_ns, clock=clock)
        self.counters = PlantCounters()
        self.max_force_n = float(backend.max_force_n)
        self.peer: bytes | None = None
        self.t0_ns = 0
        self.seq = -1  # seq of the newest published state
        self.cycles = 0
        self.end_reason = "not started"
        self.force_n = settings.safe_force_n
        self._pub_t = np.zeros(_PUB_RING, dtype=np.int64)
        self._answered_seq = -1  # newest state seq answered by an applied control
        self._last_control_seq = -1
        self._controller_left = False
        self._lockstep_answered = False
        self._in_safe = False
        self._lockstep_t_ns = 0  # the plant's time axis in lockstep (simulated ns)

    # ----------------------------------------------------------------- description
    def description(self) -> dict[str, Any]:
        d = dict(self.backend.describe())
        d.update(
            mode=self.s.mode,
            rate_hz=1e9 / self.s.period_ns,
            period_ns=self.s.period_ns,
            t0_ns=self.t0_ns,
            duration_s=self.s.duration_s,
            initial_state=self.initial_state.tolist(),
            watchdog_timeout_ms=self.s.watchdog_timeout_ns / 1e6,
        )
        return d

    # ----------------------------------------------------------------- messages
    def _drain(self) -> bool:
        """Handle everything waiting on the socket; True when lockstep may step."""
        for _ in range(256):
            frames = self.sock.recv_nowait()
            if frames is None:
                break
            now = self.clock()
            if len(frames) != 2:
                self.counters.reject("malformed")
                continue
            self._handle(frames[0], frames[1], now)
        if self._lockstep_answered:
            self._lockstep_answered = False
            return True
        return self._controller_left

    def _handle(self, peer: bytes, data: bytes, now: int) -> None:
        try:
            m = msg.decode(data)
        except msg.MessageError as exc:
            self.counters.reject(exc.kind)
            return
        if m.kind == "hello":
            self._on_hello(peer, m, now)
            return
        if peer != self.peer:
            self.counters.reject("unattached_peer")
            return
        if m.kind == "control":
            self._on_control(m, now)
        elif m.kind == "bye":
            self._controller_left = True
        elif m.kind == "clear":
            self.watchdog.clear()
            self._in_safe = False
        elif m.kind != "heartbeat":
            self.counters.reject("unexpected_kind")

    def _on_hello(self, peer: bytes, m: msg.Message, now: int) -> None:
        if m["protocol"] != msg.PROTOCOL_VERSION:
            reason = (f"protocol version mismatch: controller speaks {m['protocol']}, "
                      f"plant speaks {msg.PROTOCOL_VERSION}")
            self.sock.send(peer, msg.encode("refuse", "version_mismatch", reason))
            self.counters.reject("version_mismatch")
            return
        if self.peer is not None and peer != self.peer:
            self.sock.send(peer, msg.encode(
                "refuse", "already_attached",
                "a controller is already attached to this plant; stop it first"))
            self.counters.reject("already_attached")
            return
        if self.peer is None:
            self.peer = peer
            self.t0_ns = now + self.s.start_delay_ns
            self.log.info("controller attached", client=m["client"],
                          t0_in_ms=self.s.start_delay_ns / 1e6)
        self.sock.send(peer, msg.encode("welcome", msg.PROTOCOL_VERSION, self.description()))

    def _on_control(self, m: msg.Message, now: int) -> None:
        seq, state_seq = m["seq"], m["state_seq"]
        if seq <= self._last_control_seq:
            self.counters.reject("stale_control")
            return
        if state_seq > self.seq or state_seq < 0:
            self.counters.reject("bad_state_seq")
            return
        if self.watchdog.latched:
            self.counters.reject("latched")
            return
        self._last_control_seq = seq
        force = float(m["force_n"])
        if force > self.max_force_n or force < -self.max_force_n:
            force = self.max_force_n if force > 0 else -self.max_force_n
            self.counters.saturations += 1
        self.force_n = force
        self.backend.apply(force, self._backend_time(now))
        self.watchdog.feed()
        self.counters.controls_applied += 1
        if state_seq > self.seq - _PUB_RING:
            self.latency.record_ns("round_trip", now - int(self._pub_t[state_seq % _PUB_RING]))
        self.latency.record_ns("controller_to_plant", now - m["t_send_ns"])
        if state_seq < self.seq:
            self.counters.controls_late += 1
        if state_seq > self._answered_seq:
            self._answered_seq = state_seq
            if self.s.mode == "lockstep" and state_seq == self.seq:
                self._lockstep_answered = True

    # ----------------------------------------------------------------- plant
    def _publish(self, flags: int) -> None:
        self.seq += 1
        t = self.clock()
        self._pub_t[self.seq % _PUB_RING] = t
        values = self.state.tolist()
        if self.peer is not None:
            self.sock.send(self.peer, msg.pack_state(self.seq, t, values, flags))
        if self.recorder is not None:
            self.recorder.record((self.seq, t, self.backend.sim_time_ns * 1e-9, *values,
                                  self.force_n, flags, self._lateness_ns,
                                  self._last_control_seq, self._answered_seq))

    def _backend_time(self, now: int) -> int:
        """The backend's time axis: the wall clock, or simulated time in lockstep."""
        return self._lockstep_t_ns if self.s.mode == "lockstep" else now

    def _flags(self) -> int:
        return (msg.FLAG_SAFE | msg.FLAG_WATCHDOG) if self.watchdog.latched else 0

    def _go_safe(self, now: int) -> None:
        self._in_safe = True
        self.force_n = self.s.safe_force_n
        self.backend.apply(self.s.safe_force_n, self._backend_time(now))
        self.watchdog.note_safe_output(now)
        self.log.warning("watchdog expired: safe output applied and latched",
                         timeout_ms=self.s.watchdog_timeout_ns / 1e6)

    # ----------------------------------------------------------------- loops
    def wait_for_controller(self) -> bool:
        give_up = self.clock() + self.s.attach_timeout_ns
        while self.peer is None:
            if self.stop_requested():
                self.end_reason = "stopped before a controller attached"
                return False
            now = self.clock()
            if now >= give_up:
                self.end_reason = "no controller attached"
                return False
            wait_until(self.sock.sock, min(give_up, now + 50_000_000), self._drain,
                       spin_ns=0, clock=self.clock)
        return True

    def run(self) -> str:
        """Run until the duration ends or a stop; return the end reason."""
        if not self.wait_for_controller():
            return self.end_reason
        # Hold the initial state until t0, still answering handshakes.
        wait_until(self.sock.sock, self.t0_ns, lambda: (self._drain(), False)[1],
                   spin_ns=self.s.spin_ns, clock=self.clock)
        self.watchdog.arm()
        if self.s.mode == "lockstep":
            self._run_lockstep()
        else:
            self._run_realtime()
        self._send_final()
        return self.end_reason

    def _run_realtime(self) -> None:
        period = self.s.period_ns
        total = round(self.s.duration_s * 1e9 / period)
        sched = Schedule(self.t0_ns, period)
        prev_grid = self.t0_ns
        self.backend.start(self.t0_ns)
        while True:
            grid = sched.deadline_ns
            now = self.clock()
            self._lateness_ns = now - grid
            self.latency.record_ns("plant_lateness", self._lateness_ns)
            self.state = self.backend.advance(grid)
            if self.seq >= 0:
                # The previous state's deadline: answered before this tick? Ticks the plant
                # itself skipped (it woke a whole period late) count as misses too.
                self.latency.record_deadline(self._answered_seq >= self.seq)
                for _ in range((grid - prev_grid) // period - 1):
                    self.latency.record_deadline(False)
            prev_grid = grid
            if self.watchdog.check() and not self._in_safe:
                self._go_safe(now)
            self.cycles += 1
            if sched.index >= total:
                self.end_reason = "duration"
                return
            if self._controller_left:
                self.end_reason = "controller left"
                return
            if self.stop_requested():
                self.end_reason = "stopped"
                return
            self._publish(self._flags())
            sched.advance(self.clock())
            wait_until(self.sock.sock, sched.deadline_ns, self._drain, spin_ns=self.s.spin_ns,
                       clock=self.clock)

    def _run_lockstep(self) -> None:
        period = self.s.period_ns
        total = round(self.s.duration_s * 1e9 / period)
        self.backend.start(0)
        for k in range(total + 1):
            self._lockstep_t_ns = k * period
            self.state = self.backend.advance(self._lockstep_t_ns)
            self.cycles += 1
            if k == total:
                self.end_reason = "duration"
                return
            if self.stop_requested():
                self.end_reason = "stopped"
                return
            self._publish(self._flags())
            wait_for_message(self.sock.sock, self.s.watchdog_timeout_ns, self._drain,
                             clock=self.clock)
            if self._controller_left:
                self.end_reason = "controller left"
                return
            answered = self._answered_seq >= self.seq
            self.latency.record_deadline(answered)
            if not answered and self.watchdog.check() and not self._in_safe:
                self._go_safe(self.clock())
                self.end_reason = "watchdog: controller silent in lockstep"
                return

    def _send_final(self) -> None:
        self._publish(self._flags() | msg.FLAG_FINAL)
        if self.peer is not None:
            self.sock.send(self.peer, msg.encode("bye", self.end_reason))

    # ----------------------------------------------------------------- report
    def report(self) -> dict[str, Any]:
        stats = self.latency.statistics().to_dict()
        return {
            "process": "plant",
            "mode": self.s.mode,
            "rate_hz": 1e9 / self.s.period_ns,
            "duration_s": self.backend.sim_time_ns * 1e-9,
            "cycles": self.cycles,
            "end_reason": self.end_reason,
            "plant": self.backend.describe(),
            "final_state": self.state.tolist(),
            "latency_us": stats["figures"],
            "deadline": stats["deadline"],
            "histograms": self.latency.encode(),
            "watchdog": self.watchdog.statistics().to_dict(),
            "rejected_messages": self.counters.rejected_total,
            "rejected_by_kind": dict(self.counters.rejected_by_kind),
            "controls_applied": self.counters.controls_applied,
            "controls_late": self.counters.controls_late,
            "saturations": self.counters.saturations,
            "safe_state": self.watchdog.latched,
        }
