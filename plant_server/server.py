"""The plant loop: owns the plant clock, serves one controller, applies the latest valid control.

Each plant period the loop (1) advances the plant to this tick's grid time, integrating
piecewise so each control acts from the moment it arrived (zero-order hold between
arrivals, as on a rig), (2) scores the previous state's deadline, (3) checks the watchdog
and the safety gates, (4) publishes the state, then (5) waits for the next tick while
handling incoming messages as they arrive, so each control is timestamped on arrival. The
wait also ends at the watchdog's deadline, so an expiry reaches the safe output at once,
not at the next tick.

In `lockstep` mode the plant instead advances one period per control that answers the
newest state: deterministic and as fast as the link allows. A lockstep run ends at its
first trip (there is no operator to clear a run that goes as fast as the link allows).

Safety (DESIGN.md, "Safety model"): the watchdog (hil/runtime/watchdog.py), the safety gates
(plant_server/safety.py) and the deadline gates (hil/runtime/deadline_gates.py) each put the plant
in its safe state: the safe output is applied at once and latched, state messages carry
FLAG_SAFE, and controls are ignored (the watchdog is still fed by them) until a `clear`
from the attached controller or an `operator_clear` (`hil clear`). A stop signal, a `bye`
from the controller and an `estop` from any peer (`hil estop`) apply the safe output first,
then end the run. A controller lost to a watchdog trip may be replaced by a new one, which
finds the plant latched.

Hostile input (anything malformed, stale, implausible or from a peer that is not the
attached controller) is rejected and counted by kind in `rejected_by_kind`, logged at most
once a second per kind, and never reaches the actuator.
"""

from __future__ import annotations

import heapq
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np
import zmq

from hil.link import messages as msg
from hil.link.dataplane import ZmqPlantData
from hil.link.transport import PlantSocket, monotonic_clock_id, wait_until
from hil.runtime.deadline_gates import DeadlineGates, DeadlineGateSettings
from hil.runtime.latency import LatencyMonitor
from hil.runtime.ratelimit import RateLimiter
from hil.runtime.schedule import Schedule
from hil.runtime.watchdog import Watchdog
from plant_server.backends.base import PlantBackend
from plant_server.faults import FaultInjector
from plant_server.safety import SafetyGates, SafetyLimits

PLANT_FIGURES = ("round_trip", "controller_to_plant", "plant_lateness")
_PUB_RING = 256  # publish times kept for round-trip matching (seq % ring)
_MAX_LOGGED = 100  # watchdog trips and clears kept in the report; all are counted
SANITY_FORCE_FACTOR = 10.0  # default: reject finite forces above 10x max_force_n
# A stranger's message past the per-tick budget is decoded only if it starts (after its array
# header) with one of these kinds: an operator's command (`hil estop`, `hil clear`, `hil gains`),
# or a hello the plant could accept.
_OPERATOR_KINDS = tuple(msgpack.packb(kind)
                        for kind in ("estop", "operator_clear", "gains_get", "gains_set"))
_HELLO_KIND = msgpack.packb("hello")
_OVER_BUDGET_PER_DRAIN = 32  # then the wait re-checks its deadline before reading on


@dataclass
class PlantSettings:
    mode: str
    period_ns: int
    duration_s: float
    start_delay_ns: int
    watchdog_timeout_ns: int
    attach_timeout_ns: int
    spin_ns: int = 100_000
    lockstep_spin_ns: int = 0
    # Realtime: messages from peers other than the attached controller handled in full per
    # tick; the rest are counted (`over_budget`) unread, so a flood cannot cost deadlines.
    stranger_budget_per_tick: int = 16
    # None: saturation at the backend's max force, no state limits, zero safe force.
    safety: SafetyLimits | None = None
    # None: the deadline gates only warn, at 20% misses over 1 s or 20 in a row.
    deadline_gates: DeadlineGateSettings | None = None


@dataclass
class PlantCounters:
    controls_applied: int = 0
    controls_late: int = 0
    controls_while_safe: int = 0
    misses_while_safe: int = 0  # deadlines missed while latched safe (no control counts then)
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
        backend: PlantBackend,
        sock: PlantSocket,
        settings: PlantSettings,
        log: Any,
        stop_requested: Callable[[], bool] = lambda: False,
        clock: Callable[[], int] = time.monotonic_ns,
        recorder: Any = None,
        faults: FaultInjector | None = None,
        on_attach: Callable[[], None] | None = None,
        data: Any = None,
        run_id: str = "",
    ) -> None:
        self.backend = backend
        self.run_id = run_id  # told to observers (`hil watch --endpoint`)
        # The data plane (hil/link/dataplane.py): states and controls on `sock`, or in shared
        # memory with `sock` as the control plane.
        self.data = data if data is not None else ZmqPlantData(sock)
        self._data_info: dict[str, Any] = {"transport": self.data.kind}
        self.on_attach = on_attach  # called once a controller attaches, before t0 (off the loop)
        # hil.recording.recorder.Recorder with plant_columns: one row per published state.
        # The caller closes it.
        self.recorder = recorder
        self._lateness_ns = 0
        self._round_trip_ns = -1  # of the newest applied control, for the recording
        self.state = backend.state
        self.initial_state = backend.state.copy()
        self.sock = sock
        self.settings = settings
        self.log = log
        self.stop_requested = stop_requested
        self.clock = clock
        self._clock_id = monotonic_clock_id(clock)
        self.latency = LatencyMonitor(PLANT_FIGURES)
        self.watchdog = Watchdog(settings.watchdog_timeout_ns, clock=clock)
        self.counters = PlantCounters()
        self.max_force_n = float(backend.max_force_n)
        limits = settings.safety or SafetyLimits(
            self.max_force_n, SANITY_FORCE_FACTOR * self.max_force_n)
        described = backend.describe()
        self.safety = SafetyGates(limits, described["state_names"],
                                  described.get("upright_angles"),
                                  input_name=described.get("input_name") or "force",
                                  input_unit=described.get("input_unit") or "N")
        window = max(1, round(1e9 / settings.period_ns))
        self.deadline_gates = DeadlineGates(
            settings.deadline_gates or DeadlineGateSettings(window, 0.2, "warn", 20, "warn"),
            log=log, clock=clock)
        self.faults = faults if faults is not None and faults.active else None
        self._warn = RateLimiter(clock=clock)
        self.peer: bytes | None = None
        self.t0_ns = 0
        self.seq = -1  # seq of the newest published state
        self.cycles = 0
        self.end_reason = "not started"
        self.force_n = 0.0
        # Why the plant holds its safe output (None: under control). Latched until a clear.
        self.safe_reason: str | None = None
        self.estop_reason: str | None = None
        self._peer_lost = False  # the attached controller tripped the watchdog
        self._watchdog_log: list[dict[str, Any]] = []
        self._clears: list[dict[str, Any]] = []
        self._clear_count = 0
        self._pub_t = np.zeros(_PUB_RING, dtype=np.int64)
        self._answered_seq = -1  # newest state seq answered by an applied control
        self._last_control_seq = -1
        self._controller_left = False
        self._lockstep_answered = False
        self._pending_lat: list[tuple[str, int]] = []  # latency samples not yet recorded
        self._lockstep_t_ns = 0  # the plant's time axis in lockstep (simulated ns)
        # Fault injection: (due_ns, order, payload) states and (due_ns, order, message) controls
        self._held_states: list[tuple[int, int, tuple[int, int, list[float], int]]] = []
        self._held_controls: list[tuple[int, int, msg.Message]] = []
        self._held_order = 0
        # `hil gains` requests relayed to the controller: relay id -> (operator peer, its id)
        self._gain_requests: dict[int, tuple[bytes, int]] = {}
        self._relay_id = 0
        self._stranger_left: int | None = None  # None: no budget (handshake, lockstep)
        # Observers (`hil watch --endpoint`): peer -> [lease end ns, copies dropped]; a copy
        # of the newest state every `_observe_every` publishes, never waited for.
        self._observers: dict[bytes, list[int]] = {}
        self._observe_every = max(1, round(1e9 / (settings.period_ns * msg.OBSERVE_HZ)))
        self._observer_counts = dict.fromkeys(
            ("subscribed", "refused", "expired", "gone", "sent", "dropped"), 0)

    # ----------------------------------------------------------------- description
    def description(self) -> dict[str, Any]:
        d = dict(self.backend.describe())
        d.update(
            mode=self.settings.mode,
            rate_hz=1e9 / self.settings.period_ns,
            period_ns=self.settings.period_ns,
            t0_ns=self.t0_ns,
            clock_id=self._clock_id,  # a controller reading this same clock needs no sync
            duration_s=self.settings.duration_s,
            initial_state=self.initial_state.tolist(),
            watchdog_timeout_ms=self.settings.watchdog_timeout_ns / 1e6,
            safe_state=self.safe_reason is not None,
            safe_reason=self.safe_reason or "",
        )
        d.update(self._data_info)
        return d

    # ----------------------------------------------------------------- messages
    def _drain(self) -> bool:
        """Handle everything waiting on the socket; True when the wait should end early:
        lockstep may step, or the run is ending (bye, estop)."""
        over_budget = 0
        reads = 256
        if self.data.kind != "zmq":
            self._take_data_control()
            if not self.data.socket_turn():  # a shm wait looks at the socket every 100 us
                reads = 0
        for _ in range(reads):
            frames = self.sock.recv_nowait()
            if frames is None:
                break
            if self._stranger_left is not None and frames[0] != self.peer:
                if self._stranger_left <= 0 and not self._may_matter(frames):
                    self._reject("over_budget", "stranger messages past the per-tick budget")
                    over_budget += 1
                    if over_budget >= _OVER_BUDGET_PER_DRAIN:
                        break  # let the wait check its deadline
                    continue
                self._stranger_left -= 1
            now = self.clock()
            if len(frames) != 2:
                self._reject("malformed", f"{len(frames)} frames")
                continue
            self._handle(frames[0], frames[1], now)
            if self._lockstep_answered:
                break  # step now; anything else waiting is handled in the next wait
        if self._lockstep_answered:
            self._lockstep_answered = False
            return True
        return self._ending or (self.settings.mode == "lockstep" and self.safe_reason is not None)

    def _take_data_control(self) -> None:
        """The newest control from the shared-memory data plane, checked as on the wire."""
        got = self.data.take_control()
        if got is None:
            return
        attached, m = got
        now = self.clock()
        if not attached or self.peer is None:
            self._reject("unattached_peer", "control under another session")
        elif isinstance(m, msg.MessageError):
            self._on_non_finite_control(m.value, now)
        else:
            self._on_control_arrival(m, now)

    def _may_matter(self, frames: list[bytes]) -> bool:
        """A stranger's message worth decoding past the budget: an operator's command, or a
        hello while the plant could accept a controller. Peeks at the kind's bytes only."""
        if len(frames) != 2:
            return False
        body = frames[1][1:24]
        if body.startswith(_OPERATOR_KINDS):
            return True
        return body.startswith(_HELLO_KIND) and (self.peer is None or self._peer_lost)

    @property
    def _ending(self) -> bool:
        return self._controller_left or self.estop_reason is not None

    def _reject(self, kind: str, detail: str = "") -> None:
        self.counters.reject(kind)
        key = ("rejected", kind)
        if self._warn.allow(key):
            self.log.warning("message rejected", kind=kind, detail=detail,
                             suppressed=self._warn.take_suppressed(key))

    def _handle(self, peer: bytes, data: bytes, now: int) -> None:
        try:
            m = msg.decode(data)
        except msg.MessageError as exc:
            if exc.kind == "non_finite" and peer == self.peer:
                self._on_non_finite_control(exc.value, now)
            else:
                self._reject(exc.kind, exc.detail)
            return
        kind = m.kind
        if kind == "hello":
            self._on_hello(peer, m, now)
        elif kind == "estop":
            self._on_estop(peer, m["reason"], now)
        elif kind == "operator_clear":
            self._on_clear(f"operator: {m['operator']}", now, reply_to=peer)
        elif kind == "observe":
            self._on_observe(peer, m, now)
        elif kind in ("gains_get", "gains_set") and peer != self.peer:
            self._relay_gains(peer, m)
        elif kind == "gains_reply" and peer == self.peer:
            self._relay_gains_reply(m)
        elif peer != self.peer:
            self._reject("unattached_peer", kind)
        elif kind == "control":
            if self.data.kind != "zmq":  # the data plane is shared memory
                self._reject("control_off_data_plane", "control over ZeroMQ with run.transport shm")
            else:
                self._on_control_arrival(m, now)
        elif kind == "bye":
            self._go_safe("controller left", now)
            self._controller_left = True
        elif kind == "clear":
            self._on_clear("controller", now)
        elif kind == "sync":
            self.sock.send(peer, msg.encode("sync_reply", m["t_ns"], now))
        elif kind != "heartbeat":
            self._reject("unexpected_kind", kind)

    def _on_hello(self, peer: bytes, m: msg.Message, now: int) -> None:
        if m["protocol"] != msg.PROTOCOL_VERSION:
            reason = (f"protocol version mismatch: controller speaks {m['protocol']}, "
                      f"plant speaks {msg.PROTOCOL_VERSION}")
            self.sock.send(peer, msg.encode("refuse", "version_mismatch", reason))
            self._reject("version_mismatch", reason)
            return
        if self.peer is not None and peer != self.peer:
            if not self._peer_lost:
                self.sock.send(peer, msg.encode(
                    "refuse", "already_attached",
                    "a controller is already attached to this plant; stop it first"))
                self._reject("already_attached", m["client"][:64])
                return
            # The attached controller was lost (watchdog): the newcomer takes its place and
            # finds the plant latched in its safe state.
            self.log.warning("controller replaced: the previous one tripped the watchdog",
                             client=m["client"][:64], safe_reason=self.safe_reason)
            self.peer = peer
            self._peer_lost = False
            self._last_control_seq = -1
            self._data_info = self.data.attach()
        if self.peer is None:
            self.peer = peer
            self._data_info = self.data.attach()
            self.t0_ns = now + self.settings.start_delay_ns
            self.t0_ns = self.backend.align_start_ns(self.t0_ns)  # a rig: after its states
            self.log.info("controller attached", client=m["client"][:64],
                          t0_in_ms=self.settings.start_delay_ns / 1e6)
        self.sock.send(peer, msg.encode("welcome", msg.PROTOCOL_VERSION, self.description()))

    def _on_estop(self, peer: bytes, reason: str, now: int) -> None:
        reason = reason[:200] or "no reason given"
        self._go_safe(f"estop: {reason}", now)
        if self.estop_reason is None:
            self.estop_reason = reason
            self.log.warning("e-stop: safe output applied, ending the run", reason=reason)
        self.sock.send(peer, msg.encode("ack", "estop", "safe output applied; run ending"))
        if self.peer is not None and peer != self.peer:
            self.sock.send(self.peer, msg.encode("fault", "estop", reason))

    def _on_observe(self, peer: bytes, m: msg.Message, now: int) -> None:
        """Subscribe `peer` to observations, or renew its lease. Bounded: MAX_OBSERVERS."""
        lease_end = now + msg.OBSERVE_LEASE_MS * 1_000_000
        sub = self._observers.get(peer)
        if sub is not None:
            sub[0] = lease_end
            return
        if m["protocol"] != msg.PROTOCOL_VERSION:
            self.sock.send(peer, msg.encode("refuse", "version_mismatch", (
                f"protocol version mismatch: observer speaks {m['protocol']}, plant speaks "
                f"{msg.PROTOCOL_VERSION}")))
            self._reject("version_mismatch", m["client"][:64])
            return
        if len(self._observers) >= msg.MAX_OBSERVERS:
            self._observer_counts["refused"] += 1
            self.sock.send(peer, msg.encode("refuse", "observers_full", (
                f"this plant already has {msg.MAX_OBSERVERS} observers; close one "
                f"(hil watch) and try again")))
            return
        self._observers[peer] = [lease_end, 0]
        self._observer_counts["subscribed"] += 1
        self.log.info("observer subscribed", client=m["client"][:64])
        self.sock.send(peer, msg.encode("observing", msg.OBSERVE_LEASE_MS, self.run_id,
                                        self.description()))

    def _observe(self, t: int, flags: int) -> None:
        """A copy of the newest state to each observer: NOBLOCK, a full queue drops it (and
        counts it), a vanished or expired observer is dropped. ROUTER_MANDATORY only here,
        so a full queue is reported (EAGAIN) instead of dropped silently."""
        raw = self.sock.sock
        counts = self._observer_counts
        sim_time_s = self.backend.sim_time_ns * 1e-9
        misses = self.latency._misses  # an int read; the loop is its only writer
        safe_reason = self.safe_reason or ""
        raw.setsockopt(zmq.ROUTER_MANDATORY, 1)
        try:
            for peer, sub in list(self._observers.items()):
                if t >= sub[0]:
                    del self._observers[peer]
                    counts["expired"] += 1
                    continue
                payload = msg.pack_observation(self.seq, t, sim_time_s, self._values,
                                               float(self.force_n), flags, self.cycles, misses,
                                               self._round_trip_ns, safe_reason, sub[1])
                try:
                    raw.send_multipart((peer, payload), zmq.NOBLOCK)
                    counts["sent"] += 1
                except zmq.Again:
                    sub[1] += 1
                    counts["dropped"] += 1
                except zmq.ZMQError:  # EHOSTUNREACH: disconnected
                    del self._observers[peer]
                    counts["gone"] += 1
        finally:
            raw.setsockopt(zmq.ROUTER_MANDATORY, 0)

    def _relay_gains(self, peer: bytes, m: msg.Message) -> None:
        """`hil gains`: pass the request to the attached controller under a relay id of ours
        (ids from different operators cannot collide); its answer comes back to `peer`."""
        if self.peer is None or self._ending:
            self.sock.send(peer, msg.encode("gains_reply", m["request_id"], False,
                                            "no controller attached to this plant", [], [], []))
            return
        self._relay_id += 1
        if len(self._gain_requests) >= 16:  # operators that never read their answer
            self._gain_requests.pop(next(iter(self._gain_requests)))
        self._gain_requests[self._relay_id] = (peer, m["request_id"])
        if m.kind == "gains_get":
            payload = msg.encode("gains_get", self._relay_id, m["operator"][:80])
        else:
            payload = msg.encode("gains_set", self._relay_id, m["operator"][:80], m["names"],
                                 m["values"])
        self.sock.send(self.peer, payload)

    def _relay_gains_reply(self, m: msg.Message) -> None:
        asked = self._gain_requests.pop(m["request_id"], None)
        if asked is None:
            self._reject("unexpected_kind", "gains_reply to no request")
            return
        peer, request_id = asked
        self.sock.send(peer, msg.encode("gains_reply", request_id, m["ok"], m["detail"],
                                        m["names"], m["values"], m["old"]))

    def _on_clear(self, by: str, now: int, reply_to: bytes | None = None) -> None:
        cleared = self.safe_reason
        if cleared is None or self._ending:
            detail = "nothing to clear" if cleared is None else f"cannot clear: {cleared}"
        else:
            self.watchdog.clear()
            self.deadline_gates.reset()
            self.safe_reason = None
            self._clear_count += 1
            if len(self._clears) < _MAX_LOGGED:
                self._clears.append({"time": self._run_time_s(now), "t_ns": now, "by": by[:80],
                                     "cleared": cleared})
            self.log.warning("safe state cleared", by=by[:80], cleared=cleared)
            detail = f"cleared: {cleared}"
        if reply_to is not None:
            self.sock.send(reply_to, msg.encode("ack", "clear", detail))

    def _on_control_arrival(self, m: msg.Message, now: int) -> None:
        if self.faults is None:
            self._on_control(m, now)
            return
        delay = self.faults.control_delay_ns()
        if delay is None:
            return
        if delay == 0:
            self._on_control(m, now)
        else:
            self._held_order += 1
            heapq.heappush(self._held_controls, (now + delay, self._held_order, m))

    def _on_non_finite_control(self, force_n: object, now: int) -> None:
        """Only a control can be non-finite: the attached controller is broken. The first one
        is rejected and trips the gate; while the plant is safe the rest (one a tick, maybe)
        are counted in `controls_while_safe`, neither logged nor tripped again."""
        if self.safe_reason is not None:
            self.counters.controls_while_safe += 1
            return
        self._reject("non_finite", f"control.force_n is {force_n}")
        self._trip(self.safety.non_finite_control(repr(force_n), self._run_time_s(now), now),
                   now)

    def _on_control(self, m: msg.Message, now: int) -> None:
        seq, state_seq = m["seq"], m["state_seq"]
        if seq <= self._last_control_seq:
            self._reject("stale_control", f"seq {seq} <= {self._last_control_seq}")
            return
        if state_seq > self.seq or state_seq < 0:
            self._reject("bad_state_seq", f"state_seq {state_seq}, newest state {self.seq}")
            return
        if not self.safety.plausible(m["force_n"]):
            self._reject("implausible_force", f"force_n {m['force_n']:.6g}")
            return
        self._last_control_seq = seq
        if not self.watchdog.feed() and self.watchdog.latched:
            self._watchdog_tripped(now)
        if self.safe_reason is not None:
            self.counters.controls_while_safe += 1
            return
        t = self._backend_time(now)
        force = self.safety.limit_force(m["force_n"], t)
        self._apply(force, t)
        self.counters.controls_applied += 1
        # Latency samples go into the histograms after the next publish (`_flush_latency`),
        # off the path between this control's arrival and the next state.
        if state_seq > self.seq - _PUB_RING:
            self._round_trip_ns = now - int(self._pub_t[state_seq % _PUB_RING])
            self._pending_lat.append(("round_trip", self._round_trip_ns))
        self._pending_lat.append(("controller_to_plant", now - m["t_send_ns"]))
        if state_seq < self.seq:
            self.counters.controls_late += 1
        if state_seq > self._answered_seq:
            self._answered_seq = state_seq
            if self.settings.mode == "lockstep" and state_seq == self.seq:
                self._lockstep_answered = True

    # ----------------------------------------------------------------- safe state
    def _apply(self, force: float, t: int) -> None:
        self.backend.apply(force, t)
        self.safety.note_applied(force, t)
        self.force_n = force

    def _go_safe(self, reason: str, now: int) -> bool:
        """Apply the safe output and latch; False (and nothing done) if already safe."""
        if self.safe_reason is not None:
            return False
        self._apply(self.safety.safe_force_n(self.state), self._backend_time(now))
        self.safe_reason = reason
        return True

    def _watchdog_tripped(self, now: int) -> None:
        """The watchdog has latched: safe output (once per trip), stamped for time-to-safe."""
        if self.watchdog.last_trip is None or self.watchdog.last_trip.safe_output_ns is not None:
            return
        went_safe = self._go_safe("watchdog", now)
        safe_ns = self.clock()
        self.watchdog.note_safe_output(max(safe_ns, self.watchdog.last_trip.detected_ns))
        self._peer_lost = True
        trip = self.watchdog.last_trip
        assert trip is not None
        if len(self._watchdog_log) < _MAX_LOGGED:
            self._watchdog_log.append({
                "time": self._run_time_s(trip.detected_ns),
                "time_to_safe_ms": trip.time_to_safe_ns / 1e6,
                "last_feed_ns": trip.last_feed_ns, "detected_ns": trip.detected_ns,
                "safe_output_ns": trip.safe_output_ns,
                "already_safe": self.safe_reason if not went_safe else None})
        self.log.warning("watchdog expired: safe output applied and latched",
                         timeout_ms=self.settings.watchdog_timeout_ns / 1e6,
                         time_to_safe_ms=trip.time_to_safe_ns / 1e6)

    def _trip(self, event: Any, now: int) -> None:
        """A safety or deadline gate tripped: safe output, latched."""
        self._go_safe(f"safety: {event.gate}", now)
        self.log.warning("safety gate tripped: safe output applied and latched",
                         gate=event.gate, value=event.value, limit=event.limit)

    def _check_watchdog(self, now: int) -> None:
        if self.watchdog.check():
            self._watchdog_tripped(now)

    def _check_state(self, now: int) -> None:
        if self.safe_reason is None:
            event = self.safety.check_state(self._values, self._run_time_s(now), now)
            if event is not None:
                self._trip(event, now)
        elif self.safety.limits.braking != "none":
            # The brake's force follows the cart's speed.
            self._apply(self.safety.safe_force_n(self.state), self._backend_time(now))

    def _score_deadline(self, met: bool, now: int) -> None:
        self.latency.record_deadline(met)
        if self.safe_reason is not None:
            # Controls are ignored while safe: misses say nothing of the controller. They stay
            # in the miss ratio (the run failed) and are told apart in the report.
            self.counters.misses_while_safe += not met
            return
        breach = self.deadline_gates.record(met)
        if breach is not None:
            self._trip(self.safety.trip(breach.gate, self._run_time_s(now), now, breach.value,
                                        breach.limit), now)

    # ----------------------------------------------------------------- plant
    def _publish(self, flags: int) -> None:
        self.seq += 1
        t = self.clock()
        self._pub_t[self.seq % _PUB_RING] = t
        values = self._values
        if self.peer is not None:
            if self.faults is None:
                self.data.send_state(self.peer, self.seq, t, values, flags)
            else:
                self._publish_faulty(t, flags)
        if self.recorder is not None:
            self.recorder.record((self.seq, t, self.backend.sim_time_ns * 1e-9, *values,
                                  self.force_n, flags, self._lateness_ns,
                                  self._last_control_seq, self._answered_seq,
                                  self._round_trip_ns))
        if self._observers and (self.seq % self._observe_every == 0 or flags & msg.FLAG_FINAL):
            self._observe(t, flags)
        self._flush_latency()

    def _flush_latency(self) -> None:
        pending = self._pending_lat
        for figure, value in pending:
            self.latency.record_ns(figure, value)
        pending.clear()

    def _publish_faulty(self, t: int, flags: int) -> None:
        assert self.faults is not None and self.peer is not None
        payload = (self.seq, t, self.faults.measured(self.state), flags)
        delay = self.faults.state_delay_ns() if not flags & msg.FLAG_FINAL else 0
        if delay == 0:
            self.data.send_state(self.peer, *payload)
        elif delay is not None:
            self._held_order += 1
            heapq.heappush(self._held_states, (t + delay, self._held_order, payload))

    def _release_held(self, now: int) -> None:
        while self._held_states and self._held_states[0][0] <= now:
            payload = heapq.heappop(self._held_states)[2]
            if self.peer is not None:
                self.data.send_state(self.peer, *payload)
        while self._held_controls and self._held_controls[0][0] <= now:
            self._on_control(heapq.heappop(self._held_controls)[2], now)

    @property
    def state(self) -> np.ndarray:
        return self._state

    @state.setter
    def state(self, state: np.ndarray) -> None:
        # Converted once per tick: the gates, the publish and the recorder share the list.
        self._state = state
        self._values = state.tolist()

    def _backend_time(self, now: int) -> int:
        """The backend's time axis: the wall clock, or simulated time in lockstep."""
        return self._lockstep_t_ns if self.settings.mode == "lockstep" else now

    def _run_time_s(self, now: int) -> float:
        """Seconds on the run clock: since t0, or simulated time in lockstep."""
        if self.settings.mode == "lockstep":
            return self._lockstep_t_ns * 1e-9
        return (now - self.t0_ns) * 1e-9

    def _flags(self) -> int:
        flags = 0
        if self.safe_reason is not None:
            flags |= msg.FLAG_SAFE
            if self.safe_reason.startswith("safety"):
                flags |= msg.FLAG_SAFETY
        if self.watchdog.latched:
            flags |= msg.FLAG_WATCHDOG
        return flags

    # ----------------------------------------------------------------- loops
    def wait_for_controller(self) -> bool:
        give_up = self.clock() + self.settings.attach_timeout_ns
        while self.peer is None:
            if self.stop_requested():
                self.end_reason = "stopped before a controller attached"
                return False
            if self.estop_reason is not None:
                self.end_reason = f"estop: {self.estop_reason}"
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
            self._go_safe(self.end_reason, self.clock())
            return self.end_reason
        if self.on_attach is not None:
            self.on_attach()
        # Hold the initial state until t0, still answering handshakes.
        wait_until(self.sock.sock, self.t0_ns, lambda: (self._drain(), False)[1],
                   spin_ns=self.settings.spin_ns, clock=self.clock)
        # shm lockstep: the loop's thread to its own CPU (dataplane.loop_cpus)
        self.data.start_loop(self.settings.mode == "lockstep")
        self.watchdog.arm()
        if self.settings.mode == "lockstep":
            self._run_lockstep()
        else:
            self._run_realtime()
        self._send_final()
        return self.end_reason

    def _stopping(self, now: int) -> bool:
        """A stop signal, an e-stop or the controller's bye: safe output first, then end."""
        if self.stop_requested():
            self._go_safe("stopped by a signal", now)
            self.end_reason = "stopped"
        elif self.estop_reason is not None:
            self.end_reason = f"estop: {self.estop_reason}"
        elif self._controller_left:
            self._go_safe("controller left", now)
            self.end_reason = "controller left"
        else:
            return False
        return True

    def _run_realtime(self) -> None:
        period = self.settings.period_ns
        total = round(self.settings.duration_s * 1e9 / period)
        sched = Schedule(self.t0_ns, period)
        prev_grid = self.t0_ns
        budget = self.settings.stranger_budget_per_tick
        self.backend.start(self.t0_ns)
        while True:
            grid = sched.deadline_ns
            now = self.clock()
            if self._stopping(now):
                return
            self._lateness_ns = now - grid
            self.latency.record_ns("plant_lateness", self._lateness_ns)
            self.state = self.backend.advance(grid)
            backend_fault = self.backend.fault  # a rig silent, gone, faulted
            if backend_fault is not None:
                self._go_safe(backend_fault, now)
                self.end_reason = backend_fault
                return
            if self.seq >= 0:
                # The previous state's deadline: answered before this tick? Ticks the plant
                # itself skipped (it woke a whole period late) count as misses too.
                self._score_deadline(self._answered_seq >= self.seq, now)
                for _ in range((grid - prev_grid) // period - 1):
                    self._score_deadline(False, now)
            prev_grid = grid
            self._stranger_left = budget
            self._check_watchdog(now)
            self._check_state(now)
            self.cycles += 1
            if sched.index >= total:
                self.end_reason = "duration"
                return
            self._publish(self._flags())
            skipped = sched.advance(self.clock())
            if skipped and self._warn.allow("overrun"):
                self.log.warning("plant overrun: ticks skipped", skipped=skipped,
                                 suppressed=self._warn.take_suppressed("overrun"))
            self._wait_tick(sched.deadline_ns)

    def _wait_tick(self, tick_ns: int) -> None:
        """Wait for the next tick, handling messages; wake early for the watchdog's deadline
        and for messages held by fault injection."""
        while not self._ending:
            target = tick_ns
            wd = self.watchdog.deadline_ns
            if wd is not None and not self.watchdog.latched and wd < target:
                target = wd
            for held in (self._held_states, self._held_controls):
                if held and held[0][0] < target:
                    target = held[0][0]
            self.data.wait_until(target, self._drain, self.settings.spin_ns, self.clock)
            now = self.clock()
            if self.faults is not None:
                self._release_held(now)
            self._check_watchdog(now)
            if now >= tick_ns:
                return

    def _run_lockstep(self) -> None:
        period = self.settings.period_ns
        total = round(self.settings.duration_s * 1e9 / period)
        self.backend.start(0)
        for k in range(total + 1):
            if self._stopping(self.clock()):
                return
            self._lockstep_t_ns = k * period
            self.state = self.backend.advance(self._lockstep_t_ns)
            self._check_state(self.clock())
            self.cycles += 1
            if k == total:
                self.end_reason = "duration"
                return
            if self.safe_reason is not None:
                self.end_reason = self.safe_reason
                return
            self._publish(self._flags())
            self.data.wait_for(self.settings.watchdog_timeout_ns, self._drain,
                               self.settings.lockstep_spin_ns, self.clock)
            if self._stopping(self.clock()):
                return
            if self.safe_reason is not None:  # tripped while waiting (a NaN control)
                self.end_reason = self.safe_reason
                return
            answered = self._answered_seq >= self.seq
            if not answered:
                self._check_watchdog(self.clock())
                if self.watchdog.latched:
                    self.end_reason = "watchdog: controller silent in lockstep"
                    return
            self._score_deadline(answered, self.clock())

    def _send_final(self) -> None:
        # The actuator is left at the safe output whatever ended the run.
        if self.safe_reason is None:
            self._apply(self.safety.safe_force_n(self.state), self._backend_time(self.clock()))
        self._publish(self._flags() | msg.FLAG_FINAL)
        if self.peer is not None:
            self.sock.send(self.peer, msg.encode("bye", self.end_reason))

    # ----------------------------------------------------------------- report
    def report(self) -> dict[str, Any]:
        self._flush_latency()
        stats = self.latency.statistics().to_dict()
        watchdog: dict[str, Any] = self.watchdog.statistics().to_dict()
        watchdog["events"] = list(self._watchdog_log)
        safety = self.safety.report()
        safety["deadline_gates"] = self.deadline_gates.statistics()
        safety["clears"] = self._clear_count
        safety["clear_events"] = list(self._clears)
        safety["estop"] = self.estop_reason
        report = {
            "process": "plant",
            "mode": self.settings.mode,
            "rate_hz": 1e9 / self.settings.period_ns,
            "duration_s": self.backend.sim_time_ns * 1e-9,
            "cycles": self.cycles,
            "end_reason": self.end_reason,
            "plant": self.backend.describe(),
            "final_state": self.state.tolist(),
            "latency_us": stats["figures"],
            "deadline": {**stats["deadline"],
                         "misses_while_safe": self.counters.misses_while_safe},
            "histograms": self.latency.encode(),
            "watchdog": watchdog,
            "safety": safety,
            "rejected_messages": self.counters.rejected_total,
            "rejected_by_kind": dict(self.counters.rejected_by_kind),
            "controls_applied": self.counters.controls_applied,
            "controls_late": self.counters.controls_late,
            "controls_while_safe": self.counters.controls_while_safe,
            "saturations": self.safety.saturations,
            "safe_state": self.safe_reason is not None,
            "safe_reason": self.safe_reason,
            "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "transport": self.data.report(),
            "observers": dict(self._observer_counts),
        }
        if self.faults is not None:
            report["faults"] = self.faults.statistics()
        return report
