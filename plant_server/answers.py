"""The plant's answers to the messages it rejects (docs/protocol.md, section 7).

A peer whose message is rejected is told why, so it never waits for a timeout to learn its
mistake, in the form it waits for: a `refuse` when the message was a `hello` or an `observe`,
a refused `gains_reply` for a `hil gains` request whose id can be read from its first bytes
(even when it is too large to decode), an `error` otherwise; each carries the rejection's
code (the name `rejected_by_kind` counts it under) and one line naming the rule broken and
the fix.

Answers are limited per peer by a token bucket (`ANSWER_BURST` at once, refilled at
`ANSWERS_PER_S`), for at most `MAX_PEERS` peers (the oldest forgotten first), so a flood
costs the loop at most a few sends a second per peer; past it a rejection is counted but not
answered (`suppressed`). Each rejection is counted and logged by the plant's counters
(plant_server/parts.py: once a second per kind), never once per message.
"""

from __future__ import annotations

from collections.abc import Callable

from hil.link import messages as msg
from hil.link.transport import PlantSocket
from plant_server.parts import Counters, Log

ANSWER_BURST = 16
ANSWERS_PER_S = 10
MAX_PEERS = 64
MAX_DETAIL_CHARS = 400

# What to do about each rejection: the second half of every answer's line.
FIXES: dict[str, str] = {
    "malformed": "a message is one ZeroMQ frame holding one msgpack array [kind, field, ...] "
                 "of at most 16384 bytes; text is msgpack str, never bin",
    "oversized": f"over the protocol's {msg.MAX_MESSAGE_BYTES}-byte limit on a message "
                 "(MAX_MESSAGE_BYTES): send less at once (hil gains: fewer gains)",
    "unknown_kind": "the kinds are those of docs/protocol.md, section 4",
    "bad_arity": "send every field of the kind, in order (docs/protocol.md, section 4)",
    "bad_type": "an int field takes a msgpack integer, never a float or a bool; a number an "
                "int or a float; text a str (docs/protocol.md, section 3)",
    "bad_shape": "send one number per plant input, in the order of the welcome's input_names",
    "non_finite": "every input must be a finite number; the plant went to its safe state",
    "implausible_input": "send inputs within the welcome's input_limits",
    "stale_control": "control.seq must increase with every control sent",
    "bad_state_seq": "control.state_seq is the seq of a state the plant published",
    "not_newest": "in lockstep, answer the newest state: the plant steps on its answer only",
    "unattached_peer": "only the attached controller sends this: say hello and wait for the "
                       "welcome first",
    "unexpected_kind": "the plant does not take this kind from its controller "
                       "(docs/protocol.md, section 2)",
    "control_off_data_plane": "the welcome's transport is shm: write controls to the "
                              "shared-memory segment",
}

# The kinds whose sender waits for a `refuse` (not an `error`) when refused.
_REFUSED_AS_HANDSHAKE = frozenset({"hello", "observe"})
_GAINS_REQUESTS = frozenset({"gains_get", "gains_set"})


def answer_line(code: str, detail: str) -> str:
    """The answer's text: what was wrong, then the fix, on one line."""
    fix = FIXES.get(code)
    line = f"{detail}: {fix}" if fix else detail
    return line.replace("\n", " ")[:MAX_DETAIL_CHARS]


class Answers:
    """Counts each rejected message and answers its sender, within each peer's budget."""

    def __init__(self, sock: PlantSocket, counters: Counters, log: Log,
                 clock: Callable[[], int]) -> None:
        self._sock = sock
        self._counters = counters
        self._log = log
        self._clock = clock
        self._buckets: dict[bytes, list[float]] = {}  # peer -> [tokens, when counted (ns)]
        self.sent = 0
        self.suppressed = 0

    def rejected(self, peer: bytes | None, code: str, detail: str, of: str = "",
                 data: bytes = b"") -> None:
        """Count a rejection as `code` of `peer`'s message (of kind `of` if known, `data` its
        bytes) and answer it, unless there is no peer to tell (a control in shared memory
        from a session that is over) or the peer's budget is spent (`suppressed`)."""
        self._counters.reject(code, detail, self._log)
        if peer is None:
            return
        if not self._allow(peer):
            self.suppressed += 1
            return
        self._sock.send(peer, self._answer(code, detail, of, data))
        self.sent += 1

    @staticmethod
    def _answer(code: str, detail: str, of: str, data: bytes) -> bytes:
        line = answer_line(code, detail)
        if of in _GAINS_REQUESTS and (request_id := oversized_request_id(data)) is not None:
            return msg.encode("gains_reply", request_id, False, line, [], [], [])
        return msg.encode("refuse" if of in _REFUSED_AS_HANDSHAKE else "error", code, line)

    def _allow(self, peer: bytes) -> bool:
        now = self._clock()
        buckets = self._buckets
        bucket = buckets.get(peer)
        if bucket is None:
            if len(buckets) >= MAX_PEERS:
                del buckets[next(iter(buckets))]
            bucket = buckets[peer] = [float(ANSWER_BURST), now]
        else:
            refill = (now - bucket[1]) * ANSWERS_PER_S * 1e-9
            bucket[0] = min(float(ANSWER_BURST), bucket[0] + refill)
            bucket[1] = now
        if bucket[0] < 1.0:
            return False
        bucket[0] -= 1.0
        return True

    def report(self) -> dict[str, int]:
        return {"sent": self.sent, "suppressed": self.suppressed}


def oversized_request_id(data: bytes) -> int | None:
    """The request id of a `hil gains` request too large to decode (so that it can be
    answered as its asker waits, not left waiting): the array's first two items, read without
    unpacking the rest (messages.peek_head); None for anything else."""
    head = msg.peek_head(data, 2)
    if head is not None and head[0] in _GAINS_REQUESTS and type(head[1]) is int:
        return head[1]
    return None
