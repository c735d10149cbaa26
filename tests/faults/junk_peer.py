"""A hostile peer for the fault suite: sends COUNT junk messages of mixed kinds to a plant.

    python tests/faults/junk_peer.py ENDPOINT COUNT SEED

It connects, then waits for a line on stdin before it sends (so a test can start it ahead
and time the flood, without the interpreter's start-up in the way). After the flood it
prints its JSON summary and stays connected until stdin closes: a peer that leaves at once
loses what the plant had not read yet (ZeroMQ drops a closed connection's unread input).

Kinds, cycled in a seeded shuffle: random bytes, a msgpack map, unknown kinds, wrong arity,
wrong types, NaN/inf/huge inputs, controls of the wrong input count (for the 1-input DIP:
2 inputs, a stranger's; 9, over the protocol's limit), a protocol-1 control (one number, not
a list), replayed controls, hellos (a second controller) and protocol-1 hellos, clear and bye
and state messages from a stranger, frames over the plant's decode cap, multipart messages.
The last `TRANSPORT_OVERSIZED` are over the transport's cap: ZeroMQ drops them (and the
connection) before the plant sees them, so they go on a connection of their own. Never
`estop` or `operator_clear`: those are operator commands, not junk. Sends block (up to 5 s
each) rather than drop.
"""

from __future__ import annotations

import json
import math
import sys
import time

import msgpack
import numpy as np
import zmq

TRANSPORT_OVERSIZED = 5
PROTOCOL_VERSION = 2  # hil.link.messages.PROTOCOL_VERSION (this script imports none of ours)


def _p(obj: object) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def junk(kind: str, rng: np.random.Generator, i: int) -> list[bytes]:
    if kind == "random_bytes":
        return [rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()]
    return {
        "map": lambda: [_p({"kind": "control", "u": [1e3]})],
        "unknown_kind": lambda: [_p(["self_destruct", i])],
        "bad_arity": lambda: [_p(["control", i, 0, [1.0]])],
        "bad_type": lambda: [_p(["control", i, 0, ["150"], 0, 0, 0])],
        "scalar_input": lambda: [_p(["control", i, 0, 1.0, 0, 0, 0])],  # protocol 1's
        "nan_input": lambda: [_p(["control", i, 0, [math.nan], 0, 0, 0])],
        "inf_second_input": lambda: [_p(["control", i, 0, [0.0, -math.inf], 0, 0, 0])],
        "huge_input": lambda: [_p(["control", i, 0, [1e12], 0, 0, 0])],
        "two_inputs": lambda: [_p(["control", i, 0, [1.0, 2.0], 0, 0, 0])],
        "nine_inputs": lambda: [_p(["control", i, 0, [1.0] * 9, 0, 0, 0])],
        "replayed_control": lambda: [_p(["control", 1, 0, [50.0], 0, 0, 0])],
        "hello": lambda: [_p(["hello", PROTOCOL_VERSION, f"junk-{i}"])],
        "old_hello": lambda: [_p(["hello", 1, f"junk-{i}"])],
        "stranger_clear": lambda: [_p(["clear"])],
        "stranger_bye": lambda: [_p(["bye", "junk"])],
        "stranger_state": lambda: [_p(["state", i, 0, [0.0] * 6, 0])],
        "oversized": lambda: [b"\x91" + b"\xc0" * 20_000],
        "multipart": lambda: [b"a", b"b", b"c"],
    }[kind]()


KINDS = ("random_bytes", "map", "unknown_kind", "bad_arity", "bad_type", "scalar_input",
         "nan_input", "inf_second_input", "huge_input", "two_inputs", "nine_inputs",
         "replayed_control", "hello", "old_hello", "stranger_clear", "stranger_bye",
         "stranger_state", "oversized", "multipart")


def main(endpoint: str, count: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    ctx = zmq.Context()
    sock, big = (ctx.socket(zmq.DEALER) for _ in range(2))
    for s in (sock, big):
        s.setsockopt(zmq.SNDTIMEO, 5000)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(endpoint)
    sys.stdin.readline()
    by_kind: dict[str, int] = {}
    failed = 0
    t0 = time.monotonic_ns()
    for i in range(count):
        kind = ("transport_oversized" if i >= count - TRANSPORT_OVERSIZED
                else KINDS[int(rng.integers(len(KINDS)))])
        big_one = kind == "transport_oversized"
        frames = [b"\x00" * 100_000] if big_one else junk(kind, rng, i)
        try:
            (big if big_one else sock).send_multipart(frames)
            by_kind[kind] = by_kind.get(kind, 0) + 1
        except zmq.Again:
            failed += 1
    t1 = time.monotonic_ns()
    print(json.dumps({"sent": sum(by_kind.values()), "failed": failed, "by_kind": by_kind,
                      "start_ns": t0, "end_ns": t1}), flush=True)
    sys.stdin.read()  # stay connected until told to go
    sock.close()
    big.close()
    ctx.term()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
