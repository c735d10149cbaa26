"""The data plane of plant and controller: where `state` and `control` travel, and how the
loops wait for them. One small interface, two implementations:

- `zmq` (default; any host): states and controls are ZeroMQ messages on the same socket as
  the control plane; waits are hil/link/transport.py's `wait_until` / `wait_for_message`.
- `shm` (one host, `run.transport: shm`): states and controls go through the seqlock slots
  of hil/link/shm.py; ZeroMQ keeps the control plane (hello/welcome, sync, clear, gains,
  estop, fault, bye). Waits spin briefly and sleep on the slot's futex doorbell, checking the
  ZeroMQ socket too, so an operator's command is handled within MAX_SLEEP_NS.

The loops call `take_*` at the start of each drain (None on zmq: everything arrives on the
socket) and then read the socket when `socket_turn()` says so (always on zmq; on shm when a
look is due, every CONTROL_PLANE_POLL_NS), send through `send_*`, and wait through
`wait_until` (realtime: to a deadline) and
`wait_for` (lockstep: for the next message). A control read from shared memory gets the same
validation as a decoded one (`control_message`: a non-finite force is a MessageError
`non_finite`); the plant then applies every other check (stale, state_seq, plausibility,
the attached controller's session).
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable
from typing import Any, cast

import zmq

from hil.link import messages as msg
from hil.link import shm
from hil.link.transport import ControllerSocket, PlantSocket, wait_for_message, wait_until

TRANSPORTS = ("zmq", "shm")

Clock = Callable[[], int]


def loop_cpus(segment: str) -> tuple[int, int] | None:
    """The CPUs for the plant's and the controller's loops in lockstep over shm: two
    different ones of this process's, the pair chosen by the segment's name (so runs side by
    side spread out); None with fewer than two. Unpinned, the scheduler tends to put the woken
    peer on the waker's CPU, so the writer's FUTEX_WAKE returns only after the peer has run
    and both loops fall into sleeping every cycle; pinned apart, each spins on its own CPU
    (docs/shm.md; the figures in docs/performance.md)."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    k = zlib.crc32(segment.encode()) % len(cpus)
    return cpus[k], cpus[(k + 1) % len(cpus)]


# A lockstep wait this long means a loop was starved of its CPU (an answer takes tens of us);
# after this many, a pinned loop goes back to every CPU it had: pinned, it cannot move away
# from a CPU that other work (a SCHED_FIFO run's spin) holds, unpinned it can.
STALL_NS = 5_000_000
STALLS_TO_UNPIN = 20


class _Pin:
    """The loop thread's pin (`pin_loop`) and its way back (`note_wait`)."""

    __slots__ = ("cpu", "mask", "pinned", "stalls", "unpinned")

    def __init__(self) -> None:
        self.cpu: int | None = None  # pinned to it now
        self.pinned: int | None = None  # the CPU it was pinned to (the report's `cpu`)
        self.mask: set[int] = set()
        self.stalls = 0
        self.unpinned = False  # went back to all its CPUs after STALLS_TO_UNPIN stalls

    def pin(self, cpu: int | None) -> None:
        mask = os.sched_getaffinity(0)
        self.cpu = self.pinned = pin_loop(cpu)
        self.mask = mask

    def note_wait(self, waited_ns: int) -> None:
        if waited_ns < STALL_NS:
            return
        self.stalls += 1
        if self.stalls >= STALLS_TO_UNPIN:
            try:
                os.sched_setaffinity(0, self.mask)
            except OSError:
                return
            self.cpu = None
            self.unpinned = True

    def report(self) -> dict[str, Any]:
        return {"cpu": self.pinned, "stalls": self.stalls, "unpinned_after_stalls": self.unpinned}


def pin_loop(cpu: int | None) -> int | None:
    """Pin the calling thread (the loop's; helper threads already started stay free) to
    `cpu`, unless it is pinned already (realtime.plant_cpu / controller_cpu: the config wins)
    or `cpu` is None. The CPU pinned, or None."""
    if cpu is None:
        return None
    try:
        if len(os.sched_getaffinity(0)) == 1:
            return None
        os.sched_setaffinity(0, {cpu})
    except (OSError, ValueError):  # a CPU this process may not use: unpinned, as before
        return None
    return cpu


# Realtime over shm: the spin before each deadline leaves each loop at least 1 - MAX_LOOP_SHARE
# of the period idle after LOOP_WORK_NS of its own work (a tick's Python, wake-ups and system
# calls: ~40 us per loop). A loop near 95 % of a CPU reaches the kernel's real-time throttling
# (sched_rt_runtime_us 950000 of 1000000), and the stall that follows (tens of ms) latches
# the watchdog: a 150 us spin at 5 kHz or a 60 us spin at 10 kHz did so. The cap: 130 us at
# 5 kHz, 45 us at 10 kHz (docs/shm.md).
MAX_LOOP_SHARE = 0.85
LOOP_WORK_NS = 40_000


def spin_ns(spin_us: float, mode: str, period_ns: int) -> int:
    """The spin of the shared-memory waits: `run.shm_spin_us`, capped in realtime (see
    MAX_LOOP_SHARE). Lockstep spins for an answer, not in a period."""
    spin = round(spin_us * 1e3)
    if mode == "realtime":
        return max(0, min(spin, int(period_ns * MAX_LOOP_SHARE) - LOOP_WORK_NS))
    return spin


def control_message(seq: int, state_seq: int, u: list[float], t_state_rx_ns: int,
                    t_send_ns: int, compute_ns: int) -> msg.Message:
    """A `control` from shared memory, validated as `messages.decode` validates one."""
    msg.check_finite_u(u)
    return msg.Message("control", {"seq": seq, "state_seq": state_seq, "u": u,
                                   "t_state_rx_ns": t_state_rx_ns, "t_send_ns": t_send_ns,
                                   "compute_ns": compute_ns})


# Plain ints: `zmq.EVENTS & zmq.POLLIN` on the enums costs two enum operations per poll.
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
# How often a shared-memory wait (and a drain) also looks at the ZeroMQ control plane: each
# look is a system call (~2 us here), and a spin that made one per pass checked the slot every
# few us instead of every fraction of one. Operator commands wait at most this much longer.
CONTROL_PLANE_POLL_NS = 100_000


class _ControlPlanePoll:
    """The shared-memory waits' look at the ZeroMQ control plane, at most every
    CONTROL_PLANE_POLL_NS. `ready()` is the waits' predicate: a new message in the slot is
    handed to the drain at once, and the drain reads the socket too only if a look is due
    (`turn()`); between messages the socket is looked at when a look is due. A drain called
    from anywhere else (the handshake, zmq waits) always reads the socket."""

    __slots__ = ("_next", "_skip", "_sock")

    def __init__(self, sock: zmq.Socket[bytes]) -> None:
        self._sock = sock
        self._next = 0
        self._skip = False

    def ready(self, has_new: Callable[[], bool], on_readable: Callable[[], bool],
              clock: Clock) -> Callable[[], bool]:
        sock = self._sock

        def ready() -> bool:
            now = clock()
            due = now >= self._next
            if due:
                self._next = now + CONTROL_PLANE_POLL_NS
            if has_new():
                self._skip = not due
                try:
                    return on_readable()
                finally:
                    self._skip = False
            if due and cast(int, sock.getsockopt(_EVENTS)) & _POLLIN:
                return on_readable()
            return False
        return ready

    def turn(self) -> bool:
        """Should this drain read the socket?"""
        return not self._skip


# --------------------------------------------------------------------------- plant side
class _ZmqWaits:
    """What both ZeroMQ data planes share: waiting on the socket itself, nothing to pin,
    report or close (the socket is the caller's)."""

    sock: PlantSocket | ControllerSocket

    def socket_turn(self) -> bool:
        return True

    def wait_until(self, deadline_ns: int, on_readable: Callable[[], bool], spin_ns: int,
                   clock: Clock) -> None:
        wait_until(self.sock.sock, deadline_ns, on_readable, spin_ns=spin_ns, clock=clock)

    def wait_for(self, timeout_ns: int, on_readable: Callable[[], bool], spin_ns: int,
                 clock: Clock) -> bool:
        return wait_for_message(self.sock.sock, timeout_ns, on_readable, clock=clock,
                                spin_ns=spin_ns)

    def start_loop(self, pin: bool) -> None:
        pass

    def report(self) -> dict[str, Any]:
        return {"kind": "zmq"}

    def close(self) -> None:
        pass


class ZmqPlantData(_ZmqWaits):
    """States and controls on the plant's ZeroMQ socket."""

    kind = "zmq"
    sock: PlantSocket

    def __init__(self, sock: PlantSocket) -> None:
        self.sock = sock

    def attach(self) -> dict[str, Any]:
        return {"transport": "zmq"}

    def send_state(self, peer: bytes, seq: int, t_ns: int, values: list[float],
                   flags: int) -> None:
        self.sock.send(peer, msg.pack_state(seq, t_ns, values, flags))

    def take_control(self) -> tuple[bool, msg.Message | msg.MessageError] | None:
        return None



class _ShmWaits:
    """What both shared-memory data planes share: waiting on the slot they read (`_incoming`,
    with the ZeroMQ control plane looked at every CONTROL_PLANE_POLL_NS), the lockstep loop's
    pin, closing the segment."""

    segment: shm.Segment
    spin_ns: int
    pin: _Pin
    _poll: _ControlPlanePoll
    _incoming: shm.StateReader | shm.ControlReader

    def wait_until(self, deadline_ns: int, on_readable: Callable[[], bool], spin_ns: int,
                   clock: Clock) -> None:
        """Realtime: sleep on the doorbell (a message wakes us to be timestamped on arrival),
        and spin the last stretch before the deadline: this plane's own `spin_ns`
        (run.shm_spin_us, capped: both loops spin the same), or not at all when the caller
        asks for no spin (`spin_ns` 0: a wait that is not for a deadline)."""
        incoming = self._incoming
        incoming.wait(deadline_ns, self._poll.ready(incoming.has_new, on_readable, clock), clock,
                      spin_last_ns=self.spin_ns if spin_ns else 0)

    def wait_for(self, timeout_ns: int, on_readable: Callable[[], bool], spin_ns: int,
                 clock: Clock) -> bool:
        """Lockstep: spin this plane's own `spin_ns` (run.shm_spin_us) for the answer, then
        sleep on the bell. The caller's `spin_ns` (run.lockstep_spin_us) is the ZeroMQ
        plane's: an answer over shared memory comes in microseconds, spun for always."""
        incoming = self._incoming
        start = clock()
        got = incoming.wait(start + timeout_ns,
                            self._poll.ready(incoming.has_new, on_readable, clock), clock,
                            spin_first_ns=self.spin_ns)
        if self.pin.cpu is not None:
            self.pin.note_wait(clock() - start)
        return got

    def close(self) -> None:
        self.segment.close()


class ShmPlantData(_ShmWaits):
    """States out and controls in through the plant's shared-memory segment."""

    kind = "shm"

    def __init__(self, sock: PlantSocket, n_states: int, n_inputs: int, spin_ns: int) -> None:
        """Creates the segment for the socket's bound endpoint (a stale one from a killed
        plant is replaced; a live plant's refused: shm.SharedMemoryError)."""
        self.sock = sock
        self.spin_ns = spin_ns
        self.segment = shm.Segment.create(sock.endpoint, n_states, n_inputs)
        self._states = shm.StateWriter(self.segment)
        self._controls = shm.ControlReader(self.segment)
        self._incoming = self._controls
        self._session = 0
        self._poll = _ControlPlanePoll(sock.sock)
        self.socket_turn = self._poll.turn  # bound once: the drain asks each time
        self.cpus = loop_cpus(self.segment.name)  # (the plant's, the controller's) or None
        self.pin = _Pin()

    def attach(self) -> dict[str, Any]:
        """A controller attached (or replaced a lost one): a new session; controls written
        under the old one are refused from now on."""
        self._session = self.segment.new_session()
        return {"transport": "shm", "shm": {"segment": self.segment.name,
                                            "session": self._session,
                                            "spin_us": self.spin_ns / 1e3,
                                            "cpu": self.cpus[1] if self.cpus else None}}

    def send_state(self, peer: bytes, seq: int, t_ns: int, values: list[float],
                   flags: int) -> None:
        self._states.write(seq, t_ns, values, flags)

    def take_control(self) -> tuple[bool, msg.Message | msg.MessageError] | None:
        """The newest control: (written under the attached session?, the message or why it
        is invalid), or None."""
        got = self._controls.take()
        if got is None:
            return None
        session, seq, state_seq, rx, send, compute, u = got
        try:
            m: msg.Message | msg.MessageError = control_message(seq, state_seq, u, rx, send,
                                                                compute)
        except msg.MessageError as exc:
            m = exc
        return session == self._session and session != 0, m

    def start_loop(self, pin: bool) -> None:
        """The loop begins: with `pin` (lockstep), its thread goes to the plant's CPU
        (`loop_cpus`). Not in realtime: pinned SCHED_FIFO loops measured 25 % deadline misses
        at 5 kHz against 6.5 % unpinned here, where other SCHED_FIFO work shares the CPUs and
        a pinned loop cannot move away from it."""
        self.pin.pin(self.cpus[0] if self.cpus and pin else None)

    def report(self) -> dict[str, Any]:
        return {"kind": "shm", "segment": self.segment.name, "spin_us": self.spin_ns / 1e3,
                **self.pin.report(),
                "controls_overwritten": self._controls.overwritten,
                "read_retries": self._controls.retries,
                "sleeps": self.segment.control_bell.sleeps,
                "wakes_sent": self.segment.state_bell.wakes}


def plant_data(kind: str, sock: PlantSocket, n_states: int, n_inputs: int,
               spin_ns: int) -> Any:
    """The plant's data plane for `run.transport`."""
    if kind == "shm":
        return ShmPlantData(sock, n_states, n_inputs, spin_ns)
    if kind != "zmq":
        raise ValueError(f"unknown transport {kind!r}; choose one of {', '.join(TRANSPORTS)}")
    return ZmqPlantData(sock)


# --------------------------------------------------------------------------- controller side
class ZmqControllerData(_ZmqWaits):
    kind = "zmq"
    sock: ControllerSocket

    def __init__(self, sock: ControllerSocket) -> None:
        self.sock = sock

    def send_control(self, seq: int, state_seq: int, u: list[float], t_state_rx_ns: int,
                     t_send_ns: int, compute_ns: int) -> None:
        self.sock.send(msg.pack_control(seq, state_seq, u, t_state_rx_ns, t_send_ns,
                                        compute_ns))

    def take_state(self) -> msg.Message | None:
        return None



class ShmControllerData(_ShmWaits):
    kind = "shm"

    def __init__(self, sock: ControllerSocket, segment: str, session: int,
                 spin_ns: int, cpu: int | None = None) -> None:
        self.sock = sock
        self.spin_ns = spin_ns
        self.cpu = cpu  # the plant's choice for our loop (`loop_cpus`)
        self.pin = _Pin()
        self.segment = shm.Segment.open(segment)
        self._states = shm.StateReader(self.segment)
        self._incoming = self._states
        self._controls = shm.ControlWriter(self.segment, session)
        self._poll = _ControlPlanePoll(sock.sock)
        self.socket_turn = self._poll.turn  # bound once: the drain asks each time

    def send_control(self, seq: int, state_seq: int, u: list[float], t_state_rx_ns: int,
                     t_send_ns: int, compute_ns: int) -> None:
        self._controls.write(seq, state_seq, u, t_state_rx_ns, t_send_ns, compute_ns)

    def take_state(self) -> msg.Message | None:
        got = self._states.take()
        if got is None:
            return None
        seq, t_ns, flags, values = got
        return msg.Message("state", {"seq": seq, "t_ns": t_ns, "state": values,
                                     "flags": flags})

    def start_loop(self, pin: bool) -> None:
        """The loop begins: with `pin` (lockstep), its thread goes to the CPU the plant chose
        for it (see ShmPlantData.start_loop)."""
        self.pin.pin(self.cpu if pin else None)

    def report(self) -> dict[str, Any]:
        return {"kind": "shm", "segment": self.segment.name, "spin_us": self.spin_ns / 1e3,
                **self.pin.report(),
                "states_overwritten": self._states.overwritten,
                "read_retries": self._states.retries,
                "sleeps": self.segment.state_bell.sleeps,
                "wakes_sent": self.segment.control_bell.wakes}


def controller_data(sock: ControllerSocket, description: dict[str, Any]) -> Any:
    """The data plane the plant's welcome offers (shm.SharedMemoryError if it cannot be
    opened here)."""
    if description.get("transport", "zmq") == "shm":
        info = description.get("shm") or {}
        cpu = info.get("cpu")
        return ShmControllerData(sock, str(info.get("segment", "")), int(info.get("session", 0)),
                                 round(float(info.get("spin_us", 0.0)) * 1e3),
                                 cpu if isinstance(cpu, int) else None)
    return ZmqControllerData(sock)
