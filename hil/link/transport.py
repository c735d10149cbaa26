"""ZeroMQ sockets for the plant (ROUTER, binds) and the controller (DEALER, connects).

ROUTER/DEALER lets the plant know who sent each message, so it can answer a handshake, refuse
a second controller and reject messages from unattached peers, all on one socket. Both ends
drop rather than block when a queue is full (small high-water marks): only the newest state
and the newest control matter.

`wait_until` is the shared "sleep, then spin" wait of the real-time loops: it sleeps in
`select()` on the socket's file descriptor (microsecond timeouts, unlike zmq_poll's
milliseconds), wakes at once when a message arrives so it is timestamped on arrival, and
busy-waits only the last `spin_ns` before the deadline.

`wait_for_message` is the event-driven wait of lockstep and handshakes: zmq_poll, whose
wake-up is ~10-20 us faster than select() on the FD (measured, benchmarks/bench_roundtrip.py),
with millisecond timeouts that only bound silence.
"""

from __future__ import annotations

import select
import time
from collections.abc import Callable
from pathlib import Path
from typing import cast

import zmq

from hil.link import security

HWM = 100
MAX_MSG_BYTES = 64 * 1024


def monotonic_clock_id(clock: Callable[[], int]) -> str:
    """Who else reads the same clock as `clock`: the kernel's boot id when `clock` is
    time.monotonic_ns (one kernel, one CLOCK_MONOTONIC: processes in other containers or
    network namespaces of that kernel share it), "" for any other clock or when the id cannot
    be read. The plant sends it in its welcome; a controller with the same id needs no clock
    sync, whose estimate on one host was off by up to 30 us (half a sync round trip)."""
    if clock is not time.monotonic_ns:
        return ""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _common(sock: zmq.Socket[bytes]) -> None:
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, HWM)
    sock.setsockopt(zmq.RCVHWM, HWM)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_MSG_BYTES)


_SNDMORE_NOBLOCK = zmq.SNDMORE | zmq.NOBLOCK


class PlantSocket:
    """The plant's ROUTER socket. Messages arrive as (peer identity, frames)."""

    def __init__(self, endpoint: str, ctx: zmq.Context[zmq.Socket[bytes]] | None = None,
                 curve_keys_dir: str | Path | None = None) -> None:
        """`curve_keys_dir`: accept only CURVE clients authorized there (hil/link/security.py)."""
        self.ctx = ctx or zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.ROUTER)
        _common(self.sock)
        self._auth = None
        try:
            if curve_keys_dir is not None:
                self._auth = security.secure_server(self.sock, curve_keys_dir)
            self.sock.bind(endpoint)
        except zmq.ZMQError as exc:
            self.close()
            raise OSError(f"cannot bind plant endpoint {endpoint}: {exc}") from exc
        except security.CurveKeyError:
            self.close()
            raise
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)

    def recv_nowait(self) -> list[bytes] | None:
        # Asking EVENTS first is ~3x cheaper than letting an empty recv raise zmq.Again.
        if not cast(int, self.sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
            return None
        try:
            frames: list[bytes] = self.sock.recv_multipart(zmq.NOBLOCK, copy=True)
            return frames
        except zmq.Again:
            return None

    def send(self, peer: bytes, payload: bytes) -> None:
        # A full queue to the peer drops the message: only the newest state matters. Two
        # plain sends (the peer's identity, then the payload) cost less than half of
        # send_multipart's per-frame checks; a ROUTER takes or drops the whole message.
        sock = self.sock
        try:
            sock.send(peer, _SNDMORE_NOBLOCK)
            sock.send(payload, zmq.NOBLOCK)
        except zmq.Again:
            pass

    def close(self) -> None:
        self.sock.close(linger=0)
        if self._auth is not None:
            self._auth.stop()
            self._auth = None


class ControllerSocket:
    """The controller's DEALER socket."""

    def __init__(self, endpoint: str, ctx: zmq.Context[zmq.Socket[bytes]] | None = None,
                 curve_keys_dir: str | Path | None = None) -> None:
        """`curve_keys_dir`: talk CURVE with the controller's keys there (hil/link/security.py)."""
        self.ctx = ctx or zmq.Context.instance()
        self.sock = self.ctx.socket(zmq.DEALER)
        _common(self.sock)
        self.endpoint = endpoint
        if curve_keys_dir is not None:
            try:
                security.secure_client(self.sock, curve_keys_dir)
            except security.CurveKeyError:
                self.sock.close(linger=0)
                raise
        self.sock.connect(endpoint)

    def recv_nowait(self) -> bytes | None:
        if not cast(int, self.sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN:
            return None
        try:
            frames = self.sock.recv_multipart(zmq.NOBLOCK, copy=True)
        except zmq.Again:
            return None
        return frames[0] if len(frames) == 1 else b""

    def send(self, payload: bytes) -> bool:
        try:
            self.sock.send(payload, zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False

    def close(self) -> None:
        self.sock.close(linger=0)


def wait_until(
    sock: zmq.Socket[bytes],
    deadline_ns: int,
    on_readable: Callable[[], bool],
    spin_ns: int = 150_000,
    clock: Callable[[], int] = time.monotonic_ns,
) -> None:
    """Wait for `deadline_ns`, calling `on_readable()` whenever `sock` may have input.

    `on_readable` drains the socket and returns True to stop waiting early (for lockstep).
    """
    fd = cast(int, sock.getsockopt(zmq.FD))
    while True:
        if cast(int, sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN and on_readable():
            return
        remaining = deadline_ns - clock()
        if remaining <= 0:
            return
        if remaining > spin_ns:
            # zmq's FD is edge-triggered: EVENTS was re-checked just above, so no edge is lost;
            # a missed wake-up could only delay us to the deadline, never past it.
            select.select((fd,), (), (), (remaining - spin_ns) / 1e9)
        # within the spin window: loop without sleeping, checking the socket each pass


def wait_for_message(
    sock: zmq.Socket[bytes],
    timeout_ns: int,
    on_readable: Callable[[], bool],
    clock: Callable[[], int] = time.monotonic_ns,
    spin_ns: int = 0,
) -> bool:
    """Call `on_readable()` as messages arrive until it returns True (-> True) or timeout.

    `spin_ns` > 0 busy-polls that long first: an answer that comes back quickly is taken
    without the wake-up from an idle wait. It pays only on an idle machine (lockstep round
    trip p50 124 us instead of 147 us) and costs dearly on a busy one (430 us instead of
    110 us): see `run.lockstep_spin_us` in hil/config.py.
    """
    deadline = clock() + timeout_ns
    spin_until = min(deadline, clock() + spin_ns)
    while clock() < spin_until:
        if cast(int, sock.getsockopt(zmq.EVENTS)) & zmq.POLLIN and on_readable():
            return True
    while True:
        remaining_ms = (deadline - clock()) / 1e6
        if remaining_ms <= 0:
            return False
        if sock.poll(max(1, int(remaining_ms + 0.999)), zmq.POLLIN) and on_readable():
            return True
