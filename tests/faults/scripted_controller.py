"""A scripted controller for the fault suite: answers each state with 0 on every input,
except NaNs.

    python tests/faults/scripted_controller.py ENDPOINT NAN_AT_STATE_SEQ [NAN_COUNT [FIRST_MS
        [N_INPUTS]]]

Speaks the real protocol (hello, then one control per state, on the data plane the plant's
welcome offers: ZeroMQ or shared memory); when it answers states
NAN_AT_STATE_SEQ .. NAN_AT_STATE_SEQ + NAN_COUNT - 1 (one by default) it sends a NaN as the
last input instead, then goes on answering until the plant says bye or falls silent for 2 s.
Prints a JSON summary: when the first NaN was sent (monotonic ns), the flags of the states
that followed, how many NaNs it sent and how many controls from the first NaN on. With
FIRST_MS it answers no state for that long after the welcome (a slow start: a clock sync
across a slow link, a law's warm-up), and reports when it sent its first control.

Each control carries one number per input of the plant (its welcome's `input_names`), or
N_INPUTS numbers when that is given and > 0 (a controller that got the plant's inputs
wrong). A send that raises ends the script, its error in the summary (`send_error`).
"""

from __future__ import annotations

import json
import math
import sys
import time

from hil.link import atomics
from hil.link import messages as msg
from hil.link.dataplane import controller_data
from hil.link.transport import ControllerSocket, wait_for_message


def main(endpoint: str, nan_at: int, nan_count: int = 1, first_ms: int = 0,
         n_inputs: int = 0) -> dict[str, object]:
    atomics.warm()  # as hil-controller does: the shm doorbell compiled before the hello
    sock = ControllerSocket(endpoint)
    sock.send(msg.encode("hello", msg.PROTOCOL_VERSION, "scripted"))
    seq = 0
    nan_sent_ns = None
    flags_after: list[int] = []
    bye = None
    nans_sent = 0
    sent_from_nan = 0
    last_rx = time.monotonic_ns()
    plane = None  # the data plane, once welcomed
    quiet_until = None  # no answer before this (monotonic ns), from the welcome
    first_control_ns = None
    send_error = None
    while bye is None and send_error is None and time.monotonic_ns() - last_rx < 2_000_000_000:
        if plane is None:
            if not wait_for_message(sock.sock, 100_000_000, lambda: True):
                continue
        elif not plane.wait_for(100_000_000, lambda: True, 0, time.monotonic_ns):
            continue
        got = [] if plane is None else [plane.take_state()]
        while (data := sock.recv_nowait()) is not None:
            got.append(msg.decode(data))
        for m in got:
            if m is None:
                continue
            last_rx = time.monotonic_ns()
            if m.kind == "welcome":
                plane = controller_data(sock, m["description"])
                quiet_until = time.monotonic_ns() + first_ms * 1_000_000
                n_inputs = n_inputs or len(m["description"]["input_names"])
            if m.kind == "bye":
                bye = m["reason"]
            if m.kind != "state" or (quiet_until and time.monotonic_ns() < quiet_until):
                continue
            if nan_sent_ns is not None:
                flags_after.append(m["flags"])
            seq += 1
            nan = nan_at <= m["seq"] < nan_at + nan_count
            t = time.monotonic_ns()
            assert plane is not None
            u = [0.0] * n_inputs
            if nan:
                u[-1] = math.nan
            try:
                plane.send_control(seq, m["seq"], u, t, t, 0)
            except Exception as exc:  # reported, not raised: the test reads the summary
                send_error = f"{type(exc).__name__}: {exc}"
                break
            first_control_ns = first_control_ns or t
            if nan and nan_sent_ns is None:  # the first NaN (over shm a state may be skipped)
                nan_sent_ns = t
            nans_sent += nan
            sent_from_nan += nan_sent_ns is not None
    if plane is not None:
        plane.close()
    sock.close()
    return {"nan_sent_ns": nan_sent_ns, "flags_after": flags_after, "bye": bye,
            "controls_sent": seq, "nans_sent": nans_sent, "sent_from_nan": sent_from_nan,
            "first_control_ns": first_control_ns, "send_error": send_error}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], *map(int, sys.argv[2:6]))))
