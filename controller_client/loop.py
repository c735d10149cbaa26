"""The controller loop: handshake, then compute a control per plant state at a fixed rate.

`realtime`: the loop runs on absolute deadlines aligned to the plant's clock (the plant's
tick plus `phase_offset` of a period, so the state has arrived when the loop wakes). It waits
for each deadline in `select()` on the socket (states are timestamped as they arrive, older
ones dropped and counted), spins the last `spin_us`, computes `u` for the newest state and
sends it tagged with that state's sequence number. A deadline that passed entirely is
skipped and counted as an overrun, never caught up in a burst.

`lockstep`: the loop answers each state as soon as it arrives.

The plant's silence past `plant_timeout_ms` ends the run with a clear message.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from controller_client.law import ControlLaw
from hil.link import messages as msg
from hil.link.dataplane import ZmqControllerData, controller_data
from hil.link.shm import SharedMemoryError
from hil.link.transport import ControllerSocket, monotonic_clock_id, wait_for_message
from hil.runtime.latency import LatencyMonitor
from hil.runtime.ratelimit import RateLimiter
from hil.runtime.schedule import Schedule

CONTROLLER_FIGURES = ("state_to_controller", "compute", "controller_lateness")


class PlantUnreachable(Exception):
    """The plant did not answer the handshake in time (or went silent)."""


class HandshakeRefused(Exception):
    """The plant refused this controller; `code` says why (e.g. already_attached)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{reason} ({code})")
        self.code = code
        self.reason = reason


class LawError(Exception):
    """The control law raised inside `compute`; the original is `__cause__`."""

    def __init__(self, law: str, error: BaseException) -> None:
        super().__init__(f"control law {law} raised {type(error).__name__}: {error}")
        self.law = law


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
        log: Any,
        stop_requested: Callable[[], bool] = lambda: False,
        clock: Callable[[], int] = time.monotonic_ns,
        client_name: str = "hil-controller",
        stability: Any = None,
        open_recorder: Callable[[dict[str, Any]], Any] | None = None,
        on_attach: Callable[[], None] | None = None,
    ) -> None:
        self.law = law
        self.on_attach = on_attach  # called once after the handshake, before the first tick
        # StabilityMonitor (hil.runtime.stability) fed after each control is sent (None: off)
        self.stability = stability
        self.sock = sock
        # The data plane (hil/link/dataplane.py), chosen by the plant's welcome.
        self.data: Any = ZmqControllerData(sock)
        self.settings = settings
        self.log = log
        self.stop_requested = stop_requested
        self.clock = clock
        self.client_name = client_name
        self.latency = LatencyMonitor(CONTROLLER_FIGURES)
        self.description: dict[str, Any] = {}
        self.state = np.zeros(0)
        self.end_reason = "not started"
        # newest state not yet answered
        self._new_seq = -1
        self._new_t_ns = 0
        self._new_rx_ns = 0
        self._new_values: list[float] = []
        self._new_flags = 0
        self._answered_seq = -1
        self._last_rx_ns = 0
        self._bye: str | None = None
        self.control_seq = 0
        self.states_received = 0
        self.clock_offset_ns = 0  # plant clock - our clock, from _sync_clock
        self.clock_sync_rtt_ns: int | None = None
        self.same_clock = False  # the plant reads this very clock (one kernel): no sync
        self._t0_ns = 0
        self._period_ns = 0  # the plant's period, from its description
        self._lockstep = False
        self._pending_legs: list[int] = []  # state_to_controller samples not yet recorded
        # Messages that came during the clock sync (a lockstep plant's first state, a relayed
        # `hil gains`): handled by the first _drain, not dropped.
        self._early: list[bytes] = []
        self.states_dropped = 0
        self.no_new_state = 0
        self.late_states = 0
        self.overruns = 0
        self.rejected = 0
        self.last_flags = 0
        self.states_while_safe = 0  # states flagged FLAG_SAFE: our controls are ignored
        self.safe_latches = 0  # times the plant's states turned FLAG_SAFE (each logged once)
        self._plant_safe = False  # the newest state was flagged FLAG_SAFE
        self.bye_sent = False
        self.final_state: list[float] = []
        self.gain_changes: list[dict[str, Any]] = []  # `hil gains` requests, applied or not
        self._warn = RateLimiter(clock=clock)
        # open_recorder(description) -> hil.recording.recorder.Recorder, called after the handshake;
        # one row per control (hil.recording.recorder.controller_columns). The caller closes it.
        self.open_recorder = open_recorder
        self.recorder: Any = None
        self._lateness_ns = 0

    # ----------------------------------------------------------------- handshake
    def handshake(self) -> dict[str, Any]:
        self.sock.send(msg.encode("hello", msg.PROTOCOL_VERSION, self.client_name))
        give_up = self.clock() + self.settings.connect_timeout_ns
        while True:
            data = self.sock.recv_nowait()
            if data is not None:
                try:
                    m = msg.decode(data)
                except msg.MessageError:
                    self.rejected += 1
                    continue
                if m.kind == "welcome":
                    self.description = m["description"]
                    clock_id = monotonic_clock_id(self.clock)
                    if clock_id and self.description.get("clock_id") == clock_id:
                        self.same_clock = True  # the plant's very clock: the offset is 0
                    else:
                        self._sync_clock()
                    return self.description
                if m.kind == "refuse":
                    raise HandshakeRefused(m["code"], m["reason"])
                continue
            if self.stop_requested():
                raise PlantUnreachable("stopped while waiting for the plant's answer")
            now = self.clock()
            if now >= give_up:
                raise PlantUnreachable(
                    f"no answer from the plant at {self.sock.endpoint} within "
                    f"{self.settings.connect_timeout_ns / 1e9:g} s: is hil-plant running there?")
            wait_for_message(self.sock.sock, min(give_up - now, 20_000_000), lambda: True,
                             clock=self.clock)

    def _sync_clock(self, samples: int = 16, timeout_ns: int = 200_000_000) -> None:
        """Estimate plant clock - our clock from `samples` sync round trips (NTP-style).

        offset = t_plant - (t_sent + t_received) / 2 of the exchange with the shortest round
        trip, whose error is at most half that round trip. Across machines it is what lets
        the controller phase-lock to the plant's ticks. Not called when the plant reads this
        very clock (the welcome's `clock_id`: one kernel): there the offset is exactly 0, and
        the estimate was off by up to 30 us, which at 5 kHz put the controller's deadline
        before the state's arrival in whole runs.
        """
        best_rtt, best_offset = None, 0
        for _ in range(samples):
            t1 = self.clock()
            self.sock.send(msg.encode("sync", t1))
            reply: list[msg.Message] = []

            def take(reply: list[msg.Message] = reply, t1: int = t1) -> bool:
                while (data := self.sock.recv_nowait()) is not None:
                    try:
                        m = msg.decode(data)
                    except msg.MessageError:
                        self.rejected += 1
                        continue
                    if m.kind == "sync_reply" and m["t_echo_ns"] == t1:
                        reply.append(m)
                        return True
                    if m.kind != "sync_reply" and len(self._early) < 256:
                        self._early.append(data)
                return False

            if not wait_for_message(self.sock.sock, timeout_ns, take, clock=self.clock):
                break
            t3 = self.clock()
            rtt = t3 - t1
            if best_rtt is None or rtt < best_rtt:
                best_rtt, best_offset = rtt, reply[0]["t_ns"] - (t1 + t3) // 2
        if best_rtt is None:
            self.log.warning("plant did not answer clock sync; assuming one shared clock")
        self.clock_offset_ns = best_offset
        self.clock_sync_rtt_ns = best_rtt

    # ----------------------------------------------------------------- receiving
    def _drain(self) -> bool:
        """Take everything waiting; keep the newest state. True if a new state is ready."""
        shared = self.data.take_state()  # None on zmq: states come on the socket
        if shared is not None:
            self._on_state(shared, self.clock())
        # A shm wait looks at the socket every 100 us; a drain for a state need not.
        for _ in range(256 if self._early or self.data.socket_turn() else 0):
            data = self._early.pop(0) if self._early else self.sock.recv_nowait()
            if data is None:
                break
            now = self.clock()
            try:
                m = msg.decode(data)
            except msg.MessageError:
                self.rejected += 1
                continue
            if m.kind == "state":
                self._on_state(m, now)
                if self._lockstep and self._new_seq > self._answered_seq:
                    break  # lockstep: one state at a time, answer it now
            elif m.kind == "bye":
                self._bye = m["reason"]
            elif m.kind == "fault" and self._warn.allow("fault"):
                self.log.warning("plant fault", code=m["code"], detail=m["detail"])
            elif m.kind in ("gains_get", "gains_set"):
                self._on_gains(m)  # between two controls: never while the law computes
        return self._new_seq > self._answered_seq or self._bye is not None

    def _on_state(self, m: msg.Message, now: int) -> None:
        seq = m["seq"]
        self._last_rx_ns = now
        if seq <= self._new_seq:
            self.rejected += 1  # duplicate or reordered
            return
        self.states_received += 1
        if self._new_seq > self._answered_seq:
            self.states_dropped += 1  # an unanswered older state is superseded
        self._new_seq = seq
        self._new_t_ns = m["t_ns"] - self.clock_offset_ns  # the plant's stamp, in our clock
        self._new_rx_ns = now
        self._new_values = m["state"]
        self._new_flags = m["flags"]
        if m["flags"] & msg.FLAG_SAFE:
            self.states_while_safe += 1
            if not self._plant_safe:  # once per latch, not per state (nor per second)
                self._plant_safe = True
                self.safe_latches += 1
                self.log.warning("plant holds its safe state: controls are ignored until a "
                                 "clear (hil clear)", flags=m["flags"], seq=seq,
                                 latch=self.safe_latches)
        elif self._plant_safe:
            self._plant_safe = False
            self.log.info("plant left its safe state: under control again", seq=seq)
        # Recorded after the control is sent (`_record_pending`): off the critical path.
        self._pending_legs.append(now - self._new_t_ns)
        if m["flags"] & msg.FLAG_FINAL:
            self.final_state = list(m["state"])

    def _on_gains(self, m: msg.Message) -> None:
        """`hil gains`, relayed by the plant: report the gains, or set them through the law
        (which validates them; a refusal leaves the old gains) and record the change."""
        law = self.law
        names = [str(n) for n in getattr(law, "gain_names", ())]
        old = [float(v) for v in getattr(law, "gains", ())]
        ok, detail, now_gains = True, "current gains", old
        if m.kind == "gains_set":
            try:
                new = self._requested_gains(names, old, m["names"], m["values"])
                set_gains = getattr(law, "set_gains", None)
                if set_gains is None:
                    raise ValueError(f"{getattr(law, 'name', type(law).__name__)} cannot "
                                     "change its gains while running (no set_gains)")
                set_gains(new)
                now_gains = [float(v) for v in getattr(law, "gains", new)]
                detail = "applied before the next control"
            except (ValueError, TypeError) as exc:
                ok, detail = False, str(exc)
            event = {"time": self._gains_time_s(), "who": m["operator"][:80],
                     "names": names, "old": old, "new": now_gains if ok else None,
                     "applied": ok, "detail": detail}
            if len(self.gain_changes) < 1000:
                self.gain_changes.append(event)
            self.log.warning("gains changed" if ok else "gains refused", **event)
        self.sock.send(msg.encode("gains_reply", m["request_id"], ok, detail, names,
                                  now_gains, old))

    def _gains_time_s(self) -> float:
        """A gain change's run time. In lockstep, simulated (plant) time as every other
        lockstep event: the time of the first state the new gains answer (the plant publishes
        state seq k at k periods of simulated time). In realtime, now since the plant's first
        tick, on our clock."""
        if self._lockstep:
            return (self._answered_seq + 1) * int(self.description["period_ns"]) * 1e-9
        return (self.clock() - self._t0_ns) * 1e-9

    @staticmethod
    def _requested_gains(names: list[str], old: list[float], keys: list[Any],
                         values: list[Any]) -> list[Any]:
        if not keys:
            return list(values)
        if len(keys) != len(values):
            raise ValueError(f"{len(keys)} names for {len(values)} values")
        new: list[Any] = list(old)
        for key, value in zip(keys, values, strict=True):
            if key not in names:
                raise ValueError(f"no gain named {key!r}; the law's gains: {', '.join(names)}")
            new[names.index(key)] = value
        return new

    def _record_pending(self) -> None:
        legs = self._pending_legs
        for leg in legs:
            self.latency.record_ns("state_to_controller", leg)
        legs.clear()

    # ----------------------------------------------------------------- control
    def _answer(self) -> None:
        state = self.state
        state[:] = self._new_values
        # The law's t: in lockstep simulated time, exact and the same on every run (the
        # plant publishes state seq k at k periods); in realtime the plant's time since the
        # run's start (its stamp, both on our clock).
        if self._lockstep:
            t_s = self._new_seq * self._period_ns * 1e-9
        else:
            t_s = (self._new_t_ns - self._t0_ns) * 1e-9
        c0 = self.clock()
        try:
            force = self.law.compute(state, t_s)
        except Exception as exc:
            raise LawError(getattr(self.law, "name", type(self.law).__name__), exc) from exc
        c1 = self.clock()
        self.control_seq += 1
        t_send = self.clock()
        off = self.clock_offset_ns  # times on the wire are in the plant's clock
        self.data.send_control(self.control_seq, self._new_seq, force,
                               self._new_rx_ns + off, t_send + off, c1 - c0)
        self.latency.record_ns("compute", c1 - c0)
        self._record_pending()
        sigma, condition = self.law.sigma, self.law.mass_condition
        if self.recorder is not None:
            self.recorder.record((self.control_seq, self._new_seq, self._new_t_ns,
                                  self._new_rx_ns, t_send, c1 - c0, self._lateness_ns,
                                  *self._new_values, force, sigma, condition))
        self._answered_seq = self._new_seq
        self.last_flags = self._new_flags
        if self.stability is not None:
            self.stability.update(sigma, force, condition)

    def run(self) -> str:
        d = self.handshake()
        self._open_data_plane(d)
        if self.on_attach is not None:
            self.on_attach()
        n = len(d["state_names"])
        self.state = np.zeros(n)
        self.law.reset()
        self._t0_ns = d["t0_ns"] - self.clock_offset_ns  # the plant's first tick, our clock
        if self.open_recorder is not None:
            # The recording's times are all in this process's clock, t0 included.
            self.recorder = self.open_recorder({**d, "t0_ns": self._t0_ns})
        self._last_rx_ns = self.clock()
        self.log.info("attached", plant=d.get("name"), mode=d["mode"], rate_hz=d["rate_hz"])
        if d.get("safe_state"):
            self.log.warning("the plant is latched in its safe state", reason=d.get("safe_reason"),
                             clearing=self.settings.clear_on_attach)
            if self.settings.clear_on_attach:
                self.sock.send(msg.encode("clear"))
        self._lockstep = d["mode"] == "lockstep"
        self._period_ns = int(d["period_ns"])
        self.data.start_loop(self._lockstep)  # shm lockstep: the loop's thread to its CPU
        try:
            if self._lockstep:
                self._run_lockstep()
            else:
                self._run_realtime(self._t0_ns, d["period_ns"])
        finally:
            if self.safe_latches:  # the count at the end, whatever ended the run
                self.log.warning("plant held its safe state during the run",
                                 latches=self.safe_latches, states=self.states_while_safe)
        return self.end_reason

    def _open_data_plane(self, d: dict[str, Any]) -> None:
        offered = d.get("transport", "zmq")
        if offered != self.settings.transport:
            raise HandshakeRefused(
                "transport_mismatch", f"the plant serves run.transport {offered}, this "
                f"controller is set to {self.settings.transport}: use the same config for both")
        try:
            self.data = controller_data(self.sock, d)
        except SharedMemoryError as exc:
            raise HandshakeRefused("shm_unavailable", str(exc)) from None

    def _silent(self, now: int) -> bool:
        if now - self._last_rx_ns > self.settings.plant_timeout_ns:
            self.end_reason = (f"plant silent for {self.settings.plant_timeout_ns / 1e6:g} ms at "
                               f"{self.sock.endpoint}")
            return True
        return False

    def _ended(self) -> bool:
        if self._bye is not None:
            self.end_reason = f"plant ended the run: {self._bye}"
            return True
        if self.stop_requested():
            self.end_reason = "stopped"
            self.send_bye()  # the plant goes safe on it: before anything else
            return True
        return False

    def _run_realtime(self, t0_ns: int, period_ns: int) -> None:
        # Wait for the first state at t0 (the silence clock starts there).
        self._last_rx_ns = max(self._last_rx_ns, t0_ns)
        first = t0_ns + round(self.settings.phase_offset * period_ns)
        now = self.clock()
        if now > first:  # attached mid-run (a replacement): join the grid at the next tick
            first += -(-(now - first) // period_ns) * period_ns
        sched = Schedule(first, period_ns)
        late_window = round((1.0 - self.settings.phase_offset - self.settings.guard) * period_ns)
        while True:
            deadline = sched.deadline_ns
            self.data.wait_until(deadline, lambda: (self._drain(), False)[1],
                                 self.settings.spin_ns, self.clock)
            now = self.clock()
            self._lateness_ns = now - deadline
            self.latency.record_ns("controller_lateness", self._lateness_ns)
            if not self._drain():
                # The state is late: wait for it, but no later than `late_state_wait` of the
                # period before the plant's next tick (answering late beats not answering).
                self.data.wait_until(deadline + late_window, self._drain, 0, self.clock)
                if self._new_seq > self._answered_seq:
                    self.late_states += 1
            if self._new_seq > self._answered_seq:
                self._answer()
            else:
                self.no_new_state += 1
            if self._ended() or self._silent(now):
                return
            skipped = sched.advance(self.clock())
            if skipped:
                self.overruns += skipped
                if self._warn.allow("overrun"):
                    self.log.warning("overrun: cycles skipped", skipped=skipped,
                                     suppressed=self._warn.take_suppressed("overrun"))

    def _run_lockstep(self) -> None:
        while True:
            if not (self._early and self._drain()):  # the first state may have come early
                self.data.wait_for(self.settings.plant_timeout_ns, self._drain,
                                   self.settings.lockstep_spin_ns, self.clock)
            if self._new_seq > self._answered_seq:
                self._answer()
            if self._ended() or self._silent(self.clock()):
                return

    def send_bye(self) -> None:
        """Tell the plant we are leaving (once); best effort, a dead plant is fine."""
        if not self.bye_sent:
            self.bye_sent = True
            self.sock.send(msg.encode("bye", self.end_reason))

    # ----------------------------------------------------------------- report
    def report(self) -> dict[str, Any]:
        self._record_pending()
        stats = self.latency.statistics().to_dict()
        return {
            "process": "controller",
            "end_reason": self.end_reason,
            "controller": getattr(self.law, "name", type(self.law).__name__),
            "gains": list(getattr(self.law, "gains", [])),
            "latency_us": stats["figures"],
            "histograms": self.latency.encode(),
            "clock": {"offset_ns": self.clock_offset_ns, "sync_rtt_ns": self.clock_sync_rtt_ns,
                      "same_clock": self.same_clock},
            "controls_sent": self.control_seq,
            "states_received": self.states_received,
            "states_dropped": self.states_dropped,
            "no_new_state": self.no_new_state,
            "late_states": self.late_states,
            "overruns": self.overruns,
            "rejected_messages": self.rejected,
            "states_while_safe": self.states_while_safe,
            "safe_latches": self.safe_latches,
            "final_state": self.final_state,
            "gain_changes": list(self.gain_changes),
            "transport": self.data.report(),
        }
