"""Operator commands to a running plant: `hil estop` and `hil clear`.

Each connects to the plant's endpoint as a peer of its own (never as the controller), sends
one message and waits for the plant's `ack`:

- `estop` (any peer): the plant applies its safe output at once, tells the attached
  controller (`fault` "estop"), ends the run and writes its report.
- `operator_clear`: the plant leaves its latched safe state (watchdog, safety or deadline
  gate trip); the controller's next valid control drives it again. A plant that is ending
  (e-stop, stop signal, controller gone) cannot be cleared; the `ack` says so.

The plant binds to loopback by default, so only this machine can send these; over a
network, connections are to be authenticated (DESIGN.md, "Safety model").
"""

from __future__ import annotations

import getpass
import os
import socket
import time

from hil.link import messages as msg
from hil.link.transport import ControllerSocket, wait_for_message


class NoAnswer(Exception):
    """The plant did not acknowledge within the timeout (not running there?)."""


def _ask(endpoint: str, payload: bytes, timeout_s: float, keys_dir: str | None) -> str:
    sock = ControllerSocket(endpoint, curve_keys_dir=keys_dir)
    try:
        sock.send(payload)
        give_up = time.monotonic_ns() + round(timeout_s * 1e9)
        while True:
            remaining = give_up - time.monotonic_ns()
            if remaining <= 0:
                raise NoAnswer(f"no answer from a plant at {endpoint} within {timeout_s:g} s: "
                               f"is hil-plant running there?")
            if not wait_for_message(sock.sock, remaining, lambda: True):
                continue
            data = sock.recv_nowait()
            if data is None:
                continue
            try:
                m = msg.decode(data)
            except msg.MessageError:
                continue
            if m.kind == "ack":
                return str(m["detail"])
    finally:
        sock.close()


def operator_name() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()} pid {os.getpid()}"


def estop(endpoint: str, reason: str, timeout_s: float = 2.0, keys_dir: str | None = None
          ) -> str:
    """E-stop the plant at `endpoint`; the plant's acknowledgement, or NoAnswer.
    `keys_dir`: CURVE keys for a plant that requires them (hil/link/security.py)."""
    return _ask(endpoint, msg.encode("estop", reason), timeout_s, keys_dir)


def clear(endpoint: str, timeout_s: float = 2.0, keys_dir: str | None = None) -> str:
    """Clear the plant's latched safe state; its answer ("cleared: ...", "nothing to clear",
    "cannot clear: ..."), or NoAnswer."""
    return _ask(endpoint, msg.encode("operator_clear", operator_name()), timeout_s, keys_dir)
