"""Small shared pieces of the plant process: the typed seams its parts meet at (the data
plane, the recorder, the log), the rejection counters, and the strangers' per-tick budget."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

import msgpack

from hil.link import messages as msg
from hil.runtime.ratelimit import RateLimiter

Clock = Callable[[], int]

# Past the per-tick budget, a stranger's message is still decoded when it starts (after its
# array header) with one of these kinds: an operator's command (`hil estop`, `hil clear`,
# `hil gains`), or a hello the plant could accept; one such message per peer per tick, for at
# most PRIORITY_PEERS_PER_TICK peers, so a flood of junk dressed as commands is bounded while
# an operator's one command on its own connection is never left unread.
_OPERATOR_KINDS = tuple(msgpack.packb(kind)
                        for kind in ("estop", "operator_clear", "gains_get", "gains_set", "push"))
_HELLO_KIND = msgpack.packb("hello")
PRIORITY_PEERS_PER_TICK = 16


class Log(Protocol):
    """The structlog logger's methods the plant uses."""

    def info(self, event: str, **kw: Any) -> Any: ...

    def warning(self, event: str, **kw: Any) -> Any: ...

    def error(self, event: str, **kw: Any) -> Any: ...


class RecorderSink(Protocol):
    """hil.recording.recorder.Recorder as the loop sees it: one row per published state."""

    def record(self, row: tuple[Any, ...]) -> None: ...


class DataPlane(Protocol):
    """hil/link/dataplane.py's ZmqPlantData and ShmPlantData."""

    kind: str

    def attach(self) -> dict[str, Any]: ...

    def send_state(self, peer: bytes, seq: int, t_ns: int, values: list[float],
                   flags: int) -> None: ...

    def take_control(self) -> tuple[bool, msg.Message | msg.MessageError] | None: ...

    def socket_turn(self) -> bool: ...

    def wait_until(self, deadline_ns: int, on_readable: Callable[[], bool], spin_ns: int,
                   clock: Clock) -> object: ...

    def wait_for(self, timeout_ns: int, on_readable: Callable[[], bool], spin_ns: int,
                 clock: Clock) -> bool: ...

    def start_loop(self, pin: bool) -> None: ...

    def report(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


class Counters:
    """Rejected messages by kind, each kind logged at most once a second."""

    def __init__(self, clock: Clock) -> None:
        self.rejected_by_kind: dict[str, int] = {}
        self._warn = RateLimiter(clock=clock)

    def reject(self, kind: str, detail: str, log: Log) -> None:
        self.rejected_by_kind[kind] = self.rejected_by_kind.get(kind, 0) + 1
        key = ("rejected", kind)
        if self._warn.allow(key):
            log.warning("message rejected", kind=kind, detail=detail,
                        suppressed=self._warn.take_suppressed(key))

    def allow_warning(self, key: str) -> bool:
        """A warning about `key` may be logged now (at most once a second)."""
        return self._warn.allow(key)

    def suppressed(self, key: str) -> int:
        """Warnings about `key` not logged since the last one that was."""
        return self._warn.take_suppressed(key)

    @property
    def total(self) -> int:
        return sum(self.rejected_by_kind.values())


class Stranger:
    """How many messages of peers other than the attached controller a realtime tick
    decodes: `per_tick`, then one operator command or acceptable hello per peer (for up to
    PRIORITY_PEERS_PER_TICK peers); the rest are counted unread. No budget (None) before the
    first tick and in lockstep."""

    def __init__(self, per_tick: int) -> None:
        self.per_tick = per_tick
        self.left: int | None = None
        self._priority_peers: set[bytes] = set()

    def open(self) -> None:
        self.left = self.per_tick
        self._priority_peers.clear()

    def admit(self, frames: list[bytes], hello_welcome: bool) -> bool:
        """Decode this stranger's message? Spends the budget it is admitted under."""
        if self.left is None:
            return True
        if self.left > 0:
            self.left -= 1
            return True
        peers = self._priority_peers
        peer = frames[0]
        if (peer not in peers and len(peers) < PRIORITY_PEERS_PER_TICK
                and _may_matter(frames, hello_welcome)):
            peers.add(peer)
            return True
        return False


def _may_matter(frames: list[bytes], hello_welcome: bool) -> bool:
    """An operator's command, or a hello while the plant could take a controller: peeks at
    the kind's bytes only."""
    if len(frames) != 2:
        return False
    body = frames[1][1:24]
    return body.startswith(_OPERATOR_KINDS) or (hello_welcome and body.startswith(_HELLO_KIND))


class Inbox:
    """The plant socket's reader: the attached controller's frames all, strangers' within
    their per-tick budget (the rest counted `over_budget` unread), at most
    OVER_BUDGET_PER_DRAIN unread in one go so the wait re-checks its deadline."""

    OVER_BUDGET_PER_DRAIN = 32

    def __init__(self, sock: Any, counters: Counters, log: Log, per_tick: int,
                 clock: Clock) -> None:
        self._sock = sock
        self._counters = counters
        self._log = log
        self._clock = clock
        self.stranger = Stranger(per_tick)

    def frames(self, reads: int, controller: bytes | None,
               hello_welcome: bool) -> Iterator[tuple[bytes, bytes, int, int]]:
        """(peer, message bytes, arrival ns, frames) for each message worth decoding; a
        message is one frame: the plant rejects (and answers) any other count."""
        over_budget = 0
        stranger, recv = self.stranger, self._sock.recv_nowait
        for _ in range(reads):
            frames = recv()
            if frames is None:
                return
            if frames[0] != controller and not stranger.admit(frames, hello_welcome):
                self._counters.reject("over_budget", "stranger messages past the per-tick "
                                      "budget", self._log)
                over_budget += 1
                if over_budget >= self.OVER_BUDGET_PER_DRAIN:
                    return
                continue
            yield frames[0], frames[-1], self._clock(), len(frames) - 1
