"""A scripted controller for the fault suite: answers each state with 0 N, except one NaN.

    python tests/faults/scripted_controller.py ENDPOINT NAN_AT_STATE_SEQ

Speaks the real protocol (hello, then one control per state); when it answers state
NAN_AT_STATE_SEQ it sends force NaN instead, then goes on answering until the plant says
bye or falls silent for 2 s. Prints a JSON summary: when the NaN was sent (monotonic ns),
the flags of the states that followed.
"""

from __future__ import annotations

import json
import math
import sys
import time

from hil.link import messages as msg
from hil.link.transport import ControllerSocket, wait_for_message


def main(endpoint: str, nan_at: int) -> dict[str, object]:
    sock = ControllerSocket(endpoint)
    sock.send(msg.encode("hello", msg.PROTOCOL_VERSION, "scripted"))
    seq = 0
    nan_sent_ns = None
    flags_after: list[int] = []
    bye = None
    last_rx = time.monotonic_ns()
    while bye is None and time.monotonic_ns() - last_rx < 2_000_000_000:
        if not wait_for_message(sock.sock, 100_000_000, lambda: True):
            continue
        while (data := sock.recv_nowait()) is not None:
            last_rx = time.monotonic_ns()
            m = msg.decode(data)
            if m.kind == "bye":
                bye = m["reason"]
            if m.kind != "state":
                continue
            if nan_sent_ns is not None:
                flags_after.append(m["flags"])
            seq += 1
            force = math.nan if m["seq"] == nan_at else 0.0
            t = time.monotonic_ns()
            sock.send(msg.pack_control(seq, m["seq"], force, t, t, 0))
            if m["seq"] == nan_at:
                nan_sent_ns = t
    sock.close()
    return {"nan_sent_ns": nan_sent_ns, "flags_after": flags_after, "bye": bye,
            "controls_sent": seq}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]))))
