"""The controller's session with the plant: hello -> welcome (or a refusal), the checks of the
plant's description, the clock sync, and the data plane the welcome offers.

`handshake()` returns a frozen `Session`: what the loop needs to run (the description, the
clock offset) and what it reports (sync round trip, same clock, messages rejected). Messages
that came during the clock sync (a lockstep plant's first state, a relayed `hil gains`) are
handed over in `early`, not dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from controller_client.ports import Clock, ControllerDataPlane, Log
from hil.link import messages as msg
from hil.link.dataplane import controller_data
from hil.link.shm import SharedMemoryError
from hil.link.transport import ControllerSocket, monotonic_clock_id, wait_for_message

SYNC_SAMPLES = 16
SYNC_TIMEOUT_NS = 200_000_000
MAX_EARLY = 256


class PlantUnreachable(Exception):
    """The plant did not answer the handshake in time (or went silent)."""


class HandshakeRefused(Exception):
    """The session cannot start; `code` says why (e.g. already_attached). `by` is who refused:
    the plant (its `refuse`) or this controller (the plant's description does not fit)."""

    def __init__(self, code: str, reason: str, by: str = "plant") -> None:
        super().__init__(f"{reason} ({code})")
        self.code = code
        self.reason = reason
        self.by = by


@dataclass(frozen=True)
class Session:
    description: dict[str, Any]
    clock_offset_ns: int  # plant clock - our clock
    sync_rtt_ns: int | None  # the best sync round trip; None when not synced
    same_clock: bool  # the plant reads this very clock (one kernel): offset 0, no sync
    early: tuple[bytes, ...]  # messages that came during the clock sync, in order
    rejected: int  # undecodable messages during the handshake


def check_description(description: dict[str, Any], transport: str) -> None:
    """HandshakeRefused (by this controller) if the plant's description does not fit: more
    states than the link carries, or another transport than ours."""
    n_states = len(description.get("state_names") or ())
    if n_states > msg.MAX_STATE_DIM:
        raise HandshakeRefused(
            "too_many_states", f"the plant {description.get('name')!r} has {n_states} states; "
            f"the link carries at most {msg.MAX_STATE_DIM} (hil.link.messages.MAX_STATE_DIM): "
            f"reduce the plant's state vector", by="controller")
    offered = description.get("transport", "zmq")
    if offered != transport:
        raise HandshakeRefused(
            "transport_mismatch", f"the plant serves run.transport {offered}, this "
            f"controller is set to {transport}: use the same config for both", by="controller")


def handshake(sock: ControllerSocket, client_name: str, connect_timeout_ns: int,
              transport: str, clock: Clock, stop_requested: Callable[[], bool],
              log: Log) -> Session:
    """Say hello, wait for the welcome, check it, sync clocks unless the plant reads ours."""
    sock.send(msg.encode("hello", msg.PROTOCOL_VERSION, client_name))
    description, rejected = _welcome(sock, connect_timeout_ns, clock, stop_requested)
    check_description(description, transport)
    clock_id = monotonic_clock_id(clock)
    if clock_id and description.get("clock_id") == clock_id:
        return Session(description, 0, None, True, (), rejected)
    offset, rtt, early, sync_rejected = sync_clock(sock, clock)
    if rtt is None:
        log.warning("plant did not answer clock sync; assuming one shared clock")
    return Session(description, offset, rtt, False, early, rejected + sync_rejected)


def _welcome(sock: ControllerSocket, connect_timeout_ns: int, clock: Clock,
             stop_requested: Callable[[], bool]) -> tuple[dict[str, Any], int]:
    """(the plant's description, messages rejected meanwhile); PlantUnreachable after the
    timeout or a stop, HandshakeRefused on the plant's refusal."""
    give_up = clock() + connect_timeout_ns
    rejected = 0
    while True:
        data = sock.recv_nowait()
        if data is not None:
            try:
                m = msg.decode(data)
            except msg.MessageError:
                rejected += 1
                continue
            if m.kind == "welcome":
                return m["description"], rejected
            if m.kind == "refuse":
                raise HandshakeRefused(m["code"], m["reason"])
            continue
        if stop_requested():
            raise PlantUnreachable("stopped while waiting for the plant's answer")
        now = clock()
        if now >= give_up:
            raise PlantUnreachable(
                f"no answer from the plant at {sock.endpoint} within "
                f"{connect_timeout_ns / 1e9:g} s: is hil-plant running there?")
        wait_for_message(sock.sock, min(give_up - now, 20_000_000), _any_message, clock=clock)


def _any_message() -> bool:
    return True


def sync_clock(sock: ControllerSocket, clock: Clock, samples: int = SYNC_SAMPLES,
               timeout_ns: int = SYNC_TIMEOUT_NS
               ) -> tuple[int, int | None, tuple[bytes, ...], int]:
    """(offset, best round trip or None, other messages meanwhile, rejected): plant clock -
    our clock from `samples` sync round trips (NTP-style).

    offset = t_plant - (t_sent + t_received) / 2 of the exchange with the shortest round
    trip, whose error is at most half that round trip. Across machines it is what lets the
    controller phase-lock to the plant's ticks. Not used when the plant reads this very clock
    (the welcome's `clock_id`: one kernel): there the offset is exactly 0, and the estimate
    was off by up to 30 us, which at 5 kHz put the controller's deadline before the state's
    arrival in whole runs.
    """
    best_rtt: int | None = None
    best_offset = 0
    early: list[bytes] = []
    rejected = [0]
    for _ in range(samples):
        t1 = clock()
        sock.send(msg.encode("sync", t1))
        reply: list[msg.Message] = []

        def take(reply: list[msg.Message] = reply, t1: int = t1) -> bool:
            while (data := sock.recv_nowait()) is not None:
                try:
                    m = msg.decode(data)
                except msg.MessageError:
                    rejected[0] += 1
                    continue
                if m.kind == "sync_reply" and m["t_echo_ns"] == t1:
                    reply.append(m)
                    return True
                if m.kind != "sync_reply" and len(early) < MAX_EARLY:
                    early.append(data)
            return False

        if not wait_for_message(sock.sock, timeout_ns, take, clock=clock):
            break
        t3 = clock()
        rtt = t3 - t1
        if best_rtt is None or rtt < best_rtt:
            best_rtt, best_offset = rtt, reply[0]["t_ns"] - (t1 + t3) // 2
    return best_offset, best_rtt, tuple(early), rejected[0]


def open_data_plane(sock: ControllerSocket, description: dict[str, Any]) -> ControllerDataPlane:
    """The data plane the plant's welcome offers; HandshakeRefused if it cannot be opened."""
    try:
        data: ControllerDataPlane = controller_data(sock, description)
    except SharedMemoryError as exc:
        raise HandshakeRefused("shm_unavailable", str(exc), by="controller") from None
    return data
