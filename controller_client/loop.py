"""The controller loop: handshake, then compute a control per plant state at a fixed rate.

`realtime`: the loop runs on absolute deadlines aligned to the plant's clock (the plant's
tick plus `phase_offset` of a period, so the state has arrived when the loop wakes). It waits
for each deadline on the data plane (states are timestamped as they arrive, older ones
dropped and counted), spins the last `spin_us`, computes `u` for the newest state and sends
it tagged with that state's sequence number. A deadline that passed entirely is skipped and
counted as an overrun, never caught up in a burst.

`lockstep`: the loop answers each state as soon as it arrives.

The plant's silence past `plant_timeout_ms` (in lockstep `lockstep_plant_timeout_ms`) ends the run
with a clear message.

The loop owns its parts and calls them; a part never calls back (it returns what happened):
the session and handshake (`session`), the state intake (`intake`), the gains relay
(`gains_relay`), the answer (`answer`: law call, output check, send, record).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from controller_client.answer import Answerer, LawError, Timebase
from controller_client.gains_relay import GainsRelay, law_name
from controller_client.intake import StateIntake
from controller_client.law import ControlLaw
from controller_client.ports import Clock, ControllerDataPlane, Log, Recorder, Stability
from controller_client.session import (
    HandshakeRefused,
    PlantUnreachable,
    Session,
    handshake,
    open_data_plane,
)
from hil.experiment.sensors import Sensors
from hil.experiment.signals import SignalTable
from hil.link import messages as msg
from hil.link.dataplane import ZmqControllerData
from hil.link.shm import Replaced
from hil.link.transport import ControllerSocket
from hil.runtime.latency import LatencyMonitor
from hil.runtime.ratelimit import RateLimiter
from hil.runtime.schedule import Schedule

__all__ = ["CONTROLLER_FIGURES", "ControllerLoop", "Ending", "HandshakeRefused", "LawError",
           "LoopSettings", "PlantUnreachable"]

CONTROLLER_FIGURES = ("state_to_controller", "compute", "controller_lateness")
MAX_DRAIN = 256  # messages taken per drain at most


class Ending(enum.Enum):
    """How a run that got past the handshake ended (`end_reason` says it in words)."""

    NOT_STARTED = "not started"
    PLANT_ENDED = "plant ended the run"
    STOPPED = "stopped"
    PLANT_SILENT = "plant silent"
    REPLACED = "replaced by another controller"


@dataclass
class LoopSettings:
    phase_offset: float
    spin_ns: int
    connect_timeout_ns: int
    plant_timeout_ns: int
    guard: float = 0.15  # fraction of a period kept free before the plant's next tick
    clear_on_attach: bool = False  # send `clear` when the plant is found latched (recovery)
    lockstep_spin_ns: int = 0  # busy-poll this long for each state in lockstep
    transport: str = "zmq"  # run.transport: the plant's welcome must offer the same


class ControllerLoop:
    def __init__(
        self,
        law: ControlLaw,
        sock: ControllerSocket,
        settings: LoopSettings,
        log: Log,
        stop_requested: Callable[[], bool] = lambda: False,
        clock: Clock = time.monotonic_ns,
        client_name: str = "hil-controller",
        stability: Stability | None = None,
        open_recorder: Callable[[dict[str, Any]], Recorder] | None = None,
        on_attach: Callable[[], None] | None = None,
        target: SignalTable | None = None,
        sensors: Sensors | None = None,
    ) -> None:
        """`stability` is fed after each control is sent; `open_recorder(description)` opens
        the recording (one row per control) after the handshake; `on_attach` is called once
        after the handshake, before the first tick; `target` is the run's target for a law
        that takes one and `sensors` what the law sees of the state (controller_client/
        answer.py)."""
        self._target = target
        self._sensors = sensors
        self.law = law
        self.sock = sock
        self.settings = settings
        self.log = log
        self.stop_requested = stop_requested
        self.clock = clock
        self.client_name = client_name
        self._stability = stability
        self._open_recorder = open_recorder
        self._on_attach = on_attach
        self.latency = LatencyMonitor(CONTROLLER_FIGURES)
        self._warn = RateLimiter(clock=clock)
        # The data plane (hil/link/dataplane.py), chosen by the plant's welcome.
        self.data: ControllerDataPlane = ZmqControllerData(sock)
        self.session: Session | None = None
        self.recorder: Recorder | None = None
        self._intake = StateIntake(self.latency, log)
        self._gains = GainsRelay(law, log, self._warn)
        self._answerer: Answerer | None = None
        self._timebase = Timebase(False, 0, 0, 0)
        self._lockstep = False
        # Messages that came during the clock sync: handled by the first drain, not dropped.
        self._early: list[bytes] = []
        self._handlers: dict[str, Callable[[msg.Message], None]] = {
            "bye": self._on_bye, "fault": self._on_fault, "gains_get": self._on_gains,
            "gains_set": self._on_gains, "error": self._on_error}
        self._bye: str | None = None
        self.bye_sent = False
        self.ending = Ending.NOT_STARTED
        self.end_reason = Ending.NOT_STARTED.value
        self.no_new_state = 0
        self.late_states = 0
        self.overruns = 0
        self.rejected = 0  # undecodable messages after the handshake
        self.plant_errors: dict[str, int] = {}  # the plant's `error` answers, by code

    # ----------------------------------------------------------------- session
    def run(self) -> str:
        """Attach and run until the plant ends the run, a stop, the plant's silence or a
        replacement (the plant's bye says so, or shared memory's `Replaced`); the end reason.
        PlantUnreachable, HandshakeRefused, LawError and the data plane's other errors
        propagate (`end_reason` and `report()` stay usable)."""
        self._attach()
        tb = self._timebase
        try:
            if tb.lockstep:
                self._run_lockstep()
            else:
                self._run_realtime(tb.t0_ns, tb.period_ns)
        except Replaced as exc:  # shm: the plant gave the control slot to another controller
            self.replaced(str(exc))
        finally:
            intake = self._intake
            if intake.safe_latches:  # the count at the end, whatever ended the run
                self.log.warning("plant held its safe state during the run",
                                 latches=intake.safe_latches, states=intake.while_safe)
        return self.end_reason

    def _attach(self) -> None:
        s = self.settings
        session = handshake(self.sock, self.client_name, s.connect_timeout_ns, s.transport,
                            self.clock, self.stop_requested, self.log)
        self.session = session
        self._early = list(session.early)
        d = session.description
        self.data = open_data_plane(self.sock, d)
        if self._on_attach is not None:
            self._on_attach()
        self.law.reset()
        t0_ns = d["t0_ns"] - session.clock_offset_ns  # the plant's first tick, our clock
        self._lockstep = d["mode"] == "lockstep"
        self._timebase = Timebase(self._lockstep, t0_ns, int(d["period_ns"]),
                                  session.clock_offset_ns)
        if self._open_recorder is not None:
            # The recording's times are all in this process's clock, t0 included.
            self.recorder = self._open_recorder({**d, "t0_ns": t0_ns})
        self._answerer = Answerer(self.law, law_name(self.law), self.data,
                                  len(d["state_names"]), self._timebase, self.latency,
                                  self.clock, self.recorder, self._stability,
                                  n_inputs=len(d.get("input_names") or [None]),
                                  target=self._target, sensors=self._sensors)
        self._intake.start(session.clock_offset_ns, self.clock())
        self.log.info("attached", plant=d.get("name"), mode=d["mode"], rate_hz=d["rate_hz"])
        if d.get("safe_state"):
            self.log.warning("the plant is latched in its safe state", reason=d.get("safe_reason"),
                             clearing=self.settings.clear_on_attach)
            if self.settings.clear_on_attach:
                self.sock.send(msg.encode("clear"))
        self.data.start_loop(self._lockstep)  # shm lockstep: the loop's thread to its CPU

    # ----------------------------------------------------------------- receiving
    def _drain(self) -> bool:
        """Take everything waiting; keep the newest state. True if a new state is ready."""
        intake = self._intake
        data = self.data
        shared = data.take_state()  # None on zmq: states come on the socket
        if shared is not None:
            intake.on_state(shared, self.clock())
        early = self._early
        # A shm wait looks at the socket every 100 us; a drain for a state need not.
        for _ in range(MAX_DRAIN if early or data.socket_turn() else 0):
            raw = early.pop(0) if early else self.sock.recv_nowait()
            if raw is None:
                break
            now = self.clock()
            try:
                m = msg.decode(raw)
            except msg.MessageError:
                self.rejected += 1
                continue
            if m.kind == "state":
                intake.on_state(m, now)
                if self._lockstep and intake.seq > intake.answered_seq:
                    break  # lockstep: one state at a time, answer it now
            else:
                handler = self._handlers.get(m.kind)
                if handler is not None:
                    handler(m)
        return intake.seq > intake.answered_seq or self._bye is not None

    def _drain_and_wait(self) -> bool:
        """The realtime wait's predicate: take what came, keep waiting for the deadline."""
        self._drain()
        return False

    def _on_bye(self, m: msg.Message) -> None:
        self._bye = m["reason"]

    def _on_fault(self, m: msg.Message) -> None:
        if self._warn.allow("fault"):
            self.log.warning("plant fault", code=m["code"], detail=m["detail"])

    def _on_error(self, m: msg.Message) -> None:
        """The plant rejected a message of ours (docs/protocol.md section 7): counted by
        code, said in the log (rate-limited)."""
        code = m["code"]
        self.plant_errors[code] = self.plant_errors.get(code, 0) + 1
        if self._warn.allow("plant_error"):
            self.log.warning("the plant rejected a message", code=code, detail=m["detail"],
                             suppressed=self._warn.take_suppressed("plant_error"))

    def _on_gains(self, m: msg.Message) -> None:
        """Between two controls: never while the law computes."""
        self.sock.send(self._gains.handle(m, self._gains_time_s()))

    def _gains_time_s(self) -> float:
        """A gain change's run time. In lockstep, simulated (plant) time as every other
        lockstep event: the time of the first state the new gains answer (the plant publishes
        state seq k at k periods of simulated time). In realtime, now since the plant's first
        tick, on our clock."""
        tb = self._timebase
        if tb.lockstep:
            return (self._intake.answered_seq + 1) * tb.period_ns * 1e-9
        return (self.clock() - tb.t0_ns) * 1e-9

    # ----------------------------------------------------------------- control
    def _run_realtime(self, t0_ns: int, period_ns: int) -> None:
        settings, intake, clock = self.settings, self._intake, self.clock
        data, drain, latency = self.data, self._drain, self.latency
        answer = self._answering()
        # Wait for the first state at t0 (the silence clock starts there).
        intake.last_rx_ns = max(intake.last_rx_ns, t0_ns)
        sched = Schedule(self._first_deadline(t0_ns, period_ns), period_ns)
        late_window = round((1.0 - settings.phase_offset - settings.guard) * period_ns)
        while True:
            deadline = sched.deadline_ns
            data.wait_until(deadline, self._drain_and_wait, settings.spin_ns, clock)
            now = clock()
            lateness_ns = now - deadline
            latency.record_ns("controller_lateness", lateness_ns)
            if not drain():
                # The state is late: wait for it, but no later than `guard` of the period
                # before the plant's next tick (answering late beats not answering).
                data.wait_until(deadline + late_window, drain, 0, clock)
                if intake.seq > intake.answered_seq:
                    self.late_states += 1
            if intake.seq > intake.answered_seq:
                answer(intake.seq, intake.t_ns, intake.rx_ns, intake.values, lateness_ns)
                intake.answered()
            else:
                self.no_new_state += 1
            if self._ended() or self._silent(now):
                return
            skipped = sched.advance(clock())
            if skipped:
                self._overrun(skipped)

    def _first_deadline(self, t0_ns: int, period_ns: int) -> int:
        first = t0_ns + round(self.settings.phase_offset * period_ns)
        now = self.clock()
        if now > first:  # attached mid-run (a replacement): join the grid at the next tick
            first += -(-(now - first) // period_ns) * period_ns
        return first

    def _overrun(self, skipped: int) -> None:
        self.overruns += skipped
        if self._warn.allow("overrun"):
            self.log.warning("overrun: cycles skipped", skipped=skipped,
                             suppressed=self._warn.take_suppressed("overrun"))

    def _run_lockstep(self) -> None:
        intake, clock = self._intake, self.clock
        answer = self._answering()
        timeout_ns, spin_ns = self.settings.plant_timeout_ns, self.settings.lockstep_spin_ns
        while True:
            if not (self._early and self._drain()):  # the first state may have come early
                self.data.wait_for(timeout_ns, self._drain, spin_ns, clock)
            if intake.seq > intake.answered_seq:
                answer(intake.seq, intake.t_ns, intake.rx_ns, intake.values, 0)
                intake.answered()
            if self._ended() or self._silent(clock()):
                return

    def _answering(self) -> Callable[[int, int, int, list[float], int], None]:
        assert self._answerer is not None, "attached first"
        return self._answerer.send

    def _silent(self, now: int) -> bool:
        timeout_ns = self.settings.plant_timeout_ns
        if now - self._intake.last_rx_ns > timeout_ns:
            self._end(Ending.PLANT_SILENT, f"plant silent for {timeout_ns / 1e6:g} ms at "
                                           f"{self.sock.endpoint}")
            return True
        return False

    def _ended(self) -> bool:
        bye = self._bye
        if bye is not None:
            if bye.startswith("replaced"):
                self.replaced(bye)
            else:
                self._end(Ending.PLANT_ENDED, f"plant ended the run: {bye}")
            return True
        if self.stop_requested():
            self._end(Ending.STOPPED, "stopped")
            self.send_bye()  # the plant goes safe on it: before anything else
            return True
        return False

    def _end(self, ending: Ending, reason: str) -> None:
        self.ending = ending
        self.end_reason = reason

    def replaced(self, detail: str) -> None:
        """Another controller drives the plant now: end without a bye (it would be theirs to
        send the plant safe, not ours)."""
        self._end(Ending.REPLACED, f"replaced by another controller: {detail}")
        self.bye_sent = True

    def send_bye(self) -> None:
        """Tell the plant we are leaving (once); best effort, a dead plant is fine."""
        if not self.bye_sent:
            self.bye_sent = True
            self.sock.send(msg.encode("bye", self.end_reason))

    # ----------------------------------------------------------------- report
    @property
    def controls_sent(self) -> int:
        return self._answerer.control_seq if self._answerer is not None else 0

    @property
    def states_dropped(self) -> int:
        return self._intake.dropped

    def report(self) -> dict[str, Any]:
        """What the loop did, whatever ended it (before the handshake too)."""
        return loop_report(self)


def loop_report(loop: ControllerLoop) -> dict[str, Any]:
    """controller.json's figures from `loop` (ControllerLoop.report)."""
    intake = loop._intake
    intake.record_legs()
    session = loop.session
    return {
        "process": "controller",
        "end_reason": loop.end_reason,
        "controller": law_name(loop.law),
        "gains": list(getattr(loop.law, "gains", [])),
        "latency_us": loop.latency.statistics().to_dict()["figures"],
        "histograms": loop.latency.encode(),
        "clock": {"offset_ns": session.clock_offset_ns if session else 0,
                  "sync_rtt_ns": session.sync_rtt_ns if session else None,
                  "same_clock": session.same_clock if session else False},
        "controls_sent": loop.controls_sent,
        **intake.report_fields(),
        "no_new_state": loop.no_new_state,
        "late_states": loop.late_states,
        "overruns": loop.overruns,
        "rejected_messages": (loop.rejected + intake.duplicates
                              + (session.rejected if session else 0)),
        "plant_errors": dict(loop.plant_errors),
        "gain_changes": list(loop._gains.events),
        "transport": loop.data.report(),
    }
