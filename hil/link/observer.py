"""Observing a running plant, read-only: `hil watch --endpoint EP [--keys DIR]`.

An `Observer` connects to the plant's endpoint as a peer of its own (a DEALER, like the
operator commands) and only ever sends `observe` (hil/link/messages.py): a subscription the
plant keeps for `OBSERVE_LEASE_MS` unless renewed. The plant then sends it an `observation`
(a copy of the newest state, input, flags and loop health) about `OBSERVE_HZ` times a second,
without ever waiting for it: a full queue drops the copy and counts it (`dropped`), and an
observer that vanishes or stops renewing is forgotten. Nothing an observer sends can reach
the actuator: no estop, no clear, no gains (those stay the operator's, hil/link/operator.py).

A bad endpoint raises `BadRequest` and bad keys `CurveKeyError`, from the constructor.
With `security.curve` on at the plant, `keys_dir` is required (the client pair the plant
authorizes, `hil keygen`); without it, or with a key the plant does not trust, `subscribe()`
raises `Refused` at once, saying which and the fix.
"""

from __future__ import annotations

import time

from hil.link import messages as msg
from hil.link.operator import BadRequest, NoAnswer, Refused, await_answer, connect, operator_name

__all__ = ["BadRequest", "NoAnswer", "ObserveRefused", "Observer", "Refused"]

_MAX_PER_POLL = 512  # messages read per poll: bounded whatever the plant sends


class ObserveRefused(Refused):
    """The plant answered the subscription with `refuse` (too many observers, a protocol
    version it does not speak); the message is the plant's reason."""


class Observer:
    """A subscription to a plant's observations (see module doc). Use from one thread."""

    def __init__(self, endpoint: str, keys_dir: str | None = None) -> None:
        self.endpoint = endpoint
        self.keys_dir = keys_dir
        self._sock = connect(endpoint, keys_dir)
        self._renew_every_ns = msg.OBSERVE_LEASE_MS * 1_000_000 // 4
        self._renewed_ns = 0
        self.received = 0
        self.renewals = 0
        self.ignored = 0  # messages that are not for an observer

    def _observe(self) -> None:
        self._sock.send(msg.encode("observe", msg.PROTOCOL_VERSION,
                                   f"hil watch: {operator_name()}"))
        self._renewed_ns = time.monotonic_ns()

    def subscribe(self, timeout_s: float = 2.0) -> msg.Message:
        """Subscribe; the plant's `observing` answer (lease, run id, description).
        Raises Refused (CURVE, or `ObserveRefused` from the plant) or NoAnswer."""
        def answer() -> msg.Message | None:
            for m in self._read(64):
                if m.kind == "observing":
                    return m
                if m.kind == "refuse":
                    raise ObserveRefused(f"the plant at {self.endpoint} refused to be "
                                         f"observed: {m['reason']}")
            return None

        return await_answer(self._sock.sock, self.endpoint, self.keys_dir, timeout_s,
                            self._observe, answer)

    def poll(self) -> list[msg.Message]:
        """What has arrived (observations, or `observing` from a plant that restarted), at
        most a bounded number; renews the subscription when it is due. Never blocks."""
        if time.monotonic_ns() - self._renewed_ns >= self._renew_every_ns:
            self._observe()
            self.renewals += 1
        return self._read(_MAX_PER_POLL)

    def _read(self, limit: int) -> list[msg.Message]:
        out = []
        for _ in range(limit):
            data = self._sock.recv_nowait()
            if data is None:
                break
            try:
                m = msg.decode(data)
            except msg.MessageError:
                self.ignored += 1
                continue
            if m.kind in ("observation", "observing", "refuse"):
                self.received += m.kind == "observation"
                out.append(m)
            else:
                self.ignored += 1
        return out

    def close(self) -> None:
        self._sock.close()
