"""The plant node: one controller's messages in, the plant's state out, the safe latch.

`PlantServer` owns the parts of the plant process and routes every message through one
table (`ROUTES`): who may drive the plant (plant_server/session.py), the safe latch
(latch.py), the controls' sequence rules and figures (intake.py), deadline scoring
(scoring.py), fault delays (held.py), the `hil gains` relay (relay.py), `hil push`
(push.py) and observers (observers.py). The loops that drive it tick by tick
(plant_server/loops.py) own it and call it; it never calls them.

Safety (docs/design.md, "Safety model"): the watchdog (hil/runtime/watchdog.py), the safety
gates (plant_server/safety.py) and the deadline gates (hil/runtime/deadline_gates.py) each put
the plant in its safe state: the safe output is applied at once and latched, state messages
carry FLAG_SAFE, and controls are ignored (the watchdog is still fed by them) until a `clear`
from the attached controller or an `operator_clear` (`hil clear`), which is refused while the
tripping condition still holds. A stop signal, a `bye` from the controller and an `estop`
from any peer (`hil estop`) apply the safe output first, then end the run. A controller lost
to a watchdog trip may be replaced by a new one, which finds the plant latched; the lost one
is told (`bye`, "replaced ...") and its controls are rejected.

Hostile input (anything malformed, stale, implausible or from a peer that is not the
attached controller) is rejected and counted by kind in `rejected_by_kind`, logged at most
once a second per kind, and never reaches the actuator. The peer is told (answers.py: a
`refuse` to a hello, an `error` otherwise, naming the rule broken), within a per-peer budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hil.dynamics.inputs import Inputs
from hil.link import messages as msg
from hil.link.dataplane import ZmqPlantData
from hil.link.transport import PlantSocket, monotonic_clock_id
from hil.runtime.deadline_gates import DeadlineGates, DeadlineGateSettings
from hil.runtime.latency import LatencyMonitor
from hil.runtime.watchdog import Watchdog
from plant_server.answers import Answers
from plant_server.backends.base import PlantBackend
from plant_server.faults import FaultInjector
from plant_server.guard import Guard, RunClock
from plant_server.held import FaultyLink
from plant_server.intake import ControlIntake
from plant_server.observers import Observers
from plant_server.parts import Clock, Counters, DataPlane, Inbox, Log, RecorderSink
from plant_server.push import Pushes
from plant_server.relay import GainsRelay
from plant_server.report import plant_report
from plant_server.safety import SafetyGates, SafetyLimits
from plant_server.scoring import DeadlineScorer
from plant_server.session import Action, Event, Phase, Session

PLANT_FIGURES = ("round_trip", "controller_to_plant", "plant_lateness")
SANITY_FACTOR = 10.0  # default: reject a finite input above 10x its largest magnitude
REPLACED_REASON = ("replaced: another controller took over the plant after this one let the "
                   "watchdog expire; its controls are refused")


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
    # The controller's start-up budget: from t0 to its first valid control (its clock sync
    # and warm-up), after which the watchdog's own timeout applies.
    first_control_timeout_ns: int = 5_000_000_000


def describe_run(plant: dict[str, Any], settings: PlantSettings, t0_ns: int, clock_id: str,
                 initial_state: list[float], safe_reason: str | None,
                 data_info: dict[str, Any]) -> dict[str, Any]:
    d = dict(plant)
    d.update(mode=settings.mode, rate_hz=1e9 / settings.period_ns, period_ns=settings.period_ns,
             t0_ns=t0_ns, clock_id=clock_id, duration_s=settings.duration_s,
             initial_state=initial_state, watchdog_timeout_ms=settings.watchdog_timeout_ns / 1e6,
             safe_state=safe_reason is not None, safe_reason=safe_reason or "")
    d.update(data_info)
    return d


def _guard(backend: PlantBackend, settings: PlantSettings, latency: LatencyMonitor,
           times: RunClock, log: Log, clock: Clock) -> Guard:
    described = backend.describe()
    limits = settings.safety or SafetyLimits(Inputs.from_description(described),
                                             SANITY_FACTOR)
    names, units = described["state_names"], described["state_units"]
    angles = [n for n, unit in zip(names, units, strict=True)
              if unit == "rad" and n in described["regulated"]]
    gates = SafetyGates(limits, names, angles, targets=described["equilibrium"],
                        wraps=described["wraps"],
                        plausible_limits=described.get("plausible_limits"))
    window = max(1, round(1e9 / settings.period_ns))
    deadline_gates = DeadlineGates(
        settings.deadline_gates or DeadlineGateSettings(window, 0.2, "warn", 20, "warn"),
        log=log, clock=clock)
    return Guard(backend, gates, Watchdog(settings.watchdog_timeout_ns, clock=clock),
                 DeadlineScorer(latency, deadline_gates), times, log, clock,
                 settings.first_control_timeout_ns)


def _route(server: object, name: str) -> Any:
    """The handler `name` names: a method of the plant node, or "part.method" of a part."""
    for attribute in name.split("."):
        server = getattr(server, attribute)
    return server


# kind -> (handler, who may send it): "any" peer, the attached "controller", or an "operator"
# (any peer but the controller). Anything else is counted: from the controller as
# `unexpected_kind`, from another peer as `unattached_peer`.
ROUTES: dict[str, tuple[str, str]] = {
    "hello": ("_on_hello", "any"),
    "estop": ("_on_estop", "any"),
    "operator_clear": ("_on_operator_clear", "any"),
    "observe": ("_on_observe", "any"),
    "gains_get": ("_on_gains_request", "operator"),
    "gains_set": ("_on_gains_request", "operator"),
    "gains_reply": ("_on_gains_reply", "controller"),
    "push": ("pushes.on_push", "operator"),
    "control": ("_on_control_message", "controller"),
    "bye": ("_on_bye", "controller"),
    "clear": ("_on_controller_clear", "controller"),
    "sync": ("_on_sync", "controller"),
    "heartbeat": ("_on_heartbeat", "controller"),
}


class PlantServer:
    """Serves `backend` on `sock`. `stop_requested()` is polled once per tick."""

    def __init__(self, backend: PlantBackend, sock: PlantSocket, settings: PlantSettings,
                 log: Log, stop_requested: Callable[[], bool] = lambda: False,
                 clock: Clock = time.monotonic_ns, recorder: RecorderSink | None = None,
                 faults: FaultInjector | None = None,
                 on_attach: Callable[[], None] | None = None, data: DataPlane | None = None,
                 run_id: str = "") -> None:
        self.backend = backend
        self.sock = sock
        self.settings = settings
        self.log = log
        self.stop_requested = stop_requested
        self.clock = clock
        self.recorder = recorder  # one row per published state; the caller closes it
        self.on_attach = on_attach  # called once a controller attaches, before t0
        # States and controls on `sock`, or in shared memory with `sock` as control plane.
        self.data: DataPlane = data if data is not None else ZmqPlantData(sock)
        self.data_info: dict[str, Any] = {"transport": self.data.kind}
        self.faults = faults if faults is not None and faults.active else None
        self.faulty = None if self.faults is None else FaultyLink(self.faults, self.data)
        self.counters = Counters(clock)
        self.inbox = Inbox(sock, self.counters, log, settings.stranger_budget_per_tick, clock)
        self.session = Session()
        self.latency = LatencyMonitor(PLANT_FIGURES)
        self.intake = ControlIntake(self.latency, lockstep=settings.mode == "lockstep")
        self.times = RunClock(lockstep=settings.mode == "lockstep")
        self.guard = _guard(backend, settings, self.latency, self.times, log, clock)
        self.relay = GainsRelay(sock)
        self.answers = Answers(sock, self.counters, log, clock)
        self.observers = Observers(sock, settings.period_ns, run_id)
        self.pushes = Pushes(backend, self.guard, sock, log)  # `hil push`
        self.state = backend.state
        self.initial_state = backend.state.copy()
        self.seq = -1  # seq of the newest published state
        self.cycles = self.lateness_ns = 0
        self.end_reason = "not started"
        self.lockstep_answered = False
        self._clock_id = monotonic_clock_id(clock)  # a controller on this clock needs no sync
        self._routes = {kind: (_route(self, name), who) for kind, (name, who) in ROUTES.items()}

    # ----------------------------------------------------------------- reading
    @property
    def state(self) -> Any:
        return self._state

    @state.setter
    def state(self, state: Any) -> None:
        # Converted once per tick: the gates, the publish and the recorder share the list.
        self._state = state
        self.values: list[float] = state.tolist()

    @property
    def peer(self) -> bytes | None:
        """The attached controller's ZeroMQ identity (None before one attaches)."""
        return self.session.peer

    @property
    def safe_reason(self) -> str | None:
        return self.guard.latch.reason

    @property
    def ending(self) -> bool:
        """A bye or an e-stop: the run ends at the next look."""
        return self.session.phase is Phase.ENDED or self.guard.latch.estop_reason is not None

    def description(self) -> dict[str, Any]:
        """The welcome's description of the plant and this run."""
        return describe_run(self.backend.describe(), self.settings, self.times.t0_ns,
                            self._clock_id, self.initial_state.tolist(), self.guard.latch.reason,
                            self.data_info)

    def drain(self) -> bool:
        """Handle everything waiting; True when the wait should end early: lockstep may
        step, or the run is ending (bye, estop)."""
        reads = 256
        if self.data.kind != "zmq":
            self._take_data_control()
            if not self.data.socket_turn():  # a shm wait looks at the socket every 100 us
                reads = 0
        self._read_socket(reads)
        if self.lockstep_answered:
            self.lockstep_answered = False
            return True
        return self.ending or (self.times.lockstep and self.guard.latch.safe)

    def _read_socket(self, reads: int) -> None:
        session = self.session
        for peer, data, now, frames in self.inbox.frames(reads, session.peer,
                                                         session.may_be_replaced):
            self.handle(peer, data, now, frames)
            if self.lockstep_answered:
                return  # step now; anything else waiting is handled in the next wait

    def _take_data_control(self) -> None:
        """The newest control from the shared-memory data plane, checked as on the wire."""
        got = self.data.take_control()
        if got is None:
            return
        attached, m = got
        now = self.clock()
        if not attached or self.session.peer is None:
            self.counters.reject("unattached_peer", "control under another session", self.log)
        elif isinstance(m, msg.MessageError):
            self._on_non_finite_control(m.value, now)
        elif self.faulty is None or self.faulty.arrives_now(m, now):
            self.on_control(m, now)

    def handle(self, peer: bytes, data: bytes, now: int, frames: int = 1) -> None:
        """One message from `peer` (arrived at `now`, `data` the last of its `frames`
        ZeroMQ frames), through the routing table."""
        rejected = self.answers.rejected
        if frames != 1:
            return rejected(peer, "malformed", f"a message of {frames} ZeroMQ frames")
        controller = self.session.drives(peer)
        try:
            m = msg.decode(data)
        except msg.MessageError as exc:
            if exc.kind == "non_finite" and controller:
                return self._on_non_finite_control(exc.value, now)
            return rejected(peer, exc.kind, f"{exc.of or 'message'}: {exc.detail}", exc.of, data)
        route = self._routes.get(m.kind)
        who = route[1] if route is not None else "controller"
        if route is not None and (who == "any" or (who == "controller") == controller):
            route[0](peer, m, now)
        elif controller:
            rejected(peer, "unexpected_kind", f"{m.kind} from the attached controller")
        else:
            rejected(peer, "unattached_peer", f"{m.kind} from a peer other than the controller")

    def _on_hello(self, peer: bytes, m: msg.Message, now: int) -> None:
        client = m["client"][:64]
        outcome = self.session.hello(peer, m["protocol"], msg.PROTOCOL_VERSION)
        if outcome.refusal is not None:
            code, reason = outcome.refusal
            self.sock.send(peer, msg.encode("refuse", code, reason))
            self.counters.reject(code, reason if code == "version_mismatch" else client, self.log)
            return
        if outcome.action is Action.ATTACH:
            self.data_info = self.data.attach()
            self.times.t0_ns = self.backend.align_start_ns(now + self.settings.start_delay_ns)
            self.log.info("controller attached", client=client,
                          t0_in_ms=self.settings.start_delay_ns / 1e6)
        elif outcome.action is Action.REPLACE:  # a new data session; the lost one is told
            self.log.warning("controller replaced: the previous one tripped the watchdog",
                             client=client, safe_reason=self.guard.latch.reason)
            self.intake.reset_peer()
            self.data_info = self.data.attach()
            if outcome.replaced is not None:
                self.sock.send(outcome.replaced, msg.encode("bye", REPLACED_REASON))
        self.sock.send(peer, msg.encode("welcome", msg.PROTOCOL_VERSION, self.description()))

    def _on_estop(self, peer: bytes, m: msg.Message, now: int) -> None:
        reason = m["reason"][:200] or "no reason given"
        self.go_safe(f"estop: {reason}", now)
        if self.guard.latch.estop(reason):
            self.session.on(Event.BYE)
            self.log.warning("e-stop: safe output applied, ending the run", reason=reason)
        self.sock.send(peer, msg.encode("ack", "estop", "safe output applied; run ending"))
        controller = self.session.peer
        if controller is not None and peer != controller:
            self.sock.send(controller, msg.encode("fault", "estop", reason))

    def _on_operator_clear(self, peer: bytes, m: msg.Message, now: int) -> None:
        detail = self.clear(f"operator: {m['operator']}", now)
        self.sock.send(peer, msg.encode("ack", "clear", detail))

    def _on_controller_clear(self, peer: bytes, m: msg.Message, now: int) -> None:
        self.clear("controller", now)

    def clear(self, by: str, now: int) -> str:
        """Clear the latched safe state, unless the run is ending or the condition that
        tripped still holds; what happened, for the operator's ack."""
        if self.ending and self.guard.latch.safe:
            return f"cannot clear: {self.guard.latch.reason}"
        cleared, detail = self.guard.clear(by, now, self.values)
        if cleared:
            self.session.on(Event.CLEAR)
        return detail

    def _on_observe(self, peer: bytes, m: msg.Message, now: int) -> None:
        refused = self.observers.subscribe(peer, m, now, self.description())
        if refused is not None:
            self.counters.reject(refused, m["client"][:64], self.log)

    def _on_gains_request(self, peer: bytes, m: msg.Message, now: int) -> None:
        self.relay.request(peer, m, None if self.ending else self.session.peer)

    def _on_gains_reply(self, peer: bytes, m: msg.Message, now: int) -> None:
        if not self.relay.reply(m):
            self.answers.rejected(peer, "unexpected_kind", f"gains_reply to no request (id "
                                  f"{m['request_id']}): answer each relayed request once")

    def _on_bye(self, peer: bytes, m: msg.Message, now: int) -> None:
        self.go_safe("controller left", now)
        self.session.on(Event.BYE)

    def _on_heartbeat(self, peer: bytes, m: msg.Message, now: int) -> None:
        """Its arrival is all it says."""

    def _on_sync(self, peer: bytes, m: msg.Message, now: int) -> None:
        self.sock.send(peer, msg.encode("sync_reply", m["t_ns"], now))

    def _on_control_message(self, peer: bytes, m: msg.Message, now: int) -> None:
        if self.data.kind != "zmq":  # the data plane is shared memory
            self.answers.rejected(peer, "control_off_data_plane", "control over ZeroMQ")
        elif self.faulty is None or self.faulty.arrives_now(m, now):
            self.on_control(m, now)

    def _on_non_finite_control(self, value: object, now: int) -> None:
        """Only a control can be non-finite: the attached controller is broken. The first one
        is rejected and trips the gate; while the plant is safe the rest (one a tick, maybe)
        are counted in `controls_while_safe`, neither logged nor tripped again."""
        if (guard := self.guard).latch.safe:
            self.intake.while_safe += 1
            return
        self.answers.rejected(self.session.peer, "non_finite", f"control.u holds {value}")
        guard.trip(guard.gates.non_finite_control(repr(value), self.times.run_time_s(now),
                                                  now), now, self.state)

    def on_control(self, m: msg.Message, now: int) -> None:
        """A control from the attached controller: judged, fed to the watchdog, applied."""
        intake, guard = self.intake, self.guard
        state_seq = m["state_seq"]
        u = m["u"]
        rejected = intake.judge(m["seq"], state_seq, self.seq)
        if rejected is None:
            rejected = guard.gates.judge(u)
        if rejected is not None:
            self.answers.rejected(self.session.peer, *rejected)
            return
        intake.take(m["seq"])
        if guard.feed(now, self.state):
            self.session.on(Event.WATCHDOG)
        if guard.latch.safe:
            intake.while_safe += 1
            return
        guard.apply_control(u, now)
        if intake.note_applied(state_seq, m["t_send_ns"], now, self.seq) and self.times.lockstep:
            self.lockstep_answered = True

    # ----------------------------------------------------------------- safe state
    def go_safe(self, reason: str, now: int) -> bool:
        """Apply the safe output and latch; False (and nothing done) if already safe."""
        return self.guard.go_safe(reason, now, self.state)

    def check_watchdog(self, now: int) -> None:
        if self.guard.check_watchdog(now, self.state):
            self.session.on(Event.WATCHDOG)  # the controller is lost: it may be replaced

    def check_state(self, now: int) -> None:
        self.guard.check_state(self.values, self.state, now)

    def score_deadline(self, met: bool, now: int) -> None:
        self.guard.score_deadline(met, now, self.state)

    # ----------------------------------------------------------------- publishing
    def flags(self) -> int:
        return self.guard.latch.flags(self.guard.watchdog.latched)

    def publish(self, flags: int) -> None:
        self.seq += 1
        t = self.clock()
        self.intake.published(self.seq, t)
        values = self.values
        peer = self.session.peer
        if peer is not None:
            if self.faulty is None:
                self.data.send_state(peer, self.seq, t, values, flags)
            else:
                self.faulty.send_state(peer, self.seq, t, self.state, flags)
        if self.recorder is not None:
            intake = self.intake
            self.recorder.record((self.seq, t, self.backend.sim_time_ns * 1e-9, *values,
                                  *self.guard.u, flags, self.lateness_ns,
                                  intake.last_control_seq, intake.answered_seq,
                                  intake.round_trip_ns))
        if self.observers and (self.seq % self.observers.every == 0 or flags & msg.FLAG_FINAL):
            self.observe(t, flags)
        self.intake.flush()

    def observe(self, t: int, flags: int) -> None:
        """A copy of the newest state to each observer (never waited for)."""
        guard = self.guard
        self.observers.send_copies(t, (
            self.seq, t, self.backend.sim_time_ns * 1e-9, self.values, guard.u,
            flags, self.cycles, self.latency.misses, self.intake.round_trip_ns,
            guard.latch.reason or ""))

    def release_held(self, now: int) -> None:
        """Send the states and apply the controls fault injection held that are due."""
        if self.faulty is not None:
            for m in self.faulty.release(now, self.session.peer):
                self.on_control(m, now)

    def report(self) -> dict[str, Any]:
        """plant.json (plant_server/report.py), whatever ended the run."""
        self.intake.flush()
        return plant_report(self)
