"""Operator commands to a running plant: `hil estop`, `hil clear` and `hil gains`.

Each connects to the plant's endpoint as a peer of its own (never as the controller), sends
one message and waits for the plant's `ack`:

- `estop` (any peer): the plant applies its safe output at once, tells the attached
  controller (`fault` "estop"), ends the run and writes its report.
- `operator_clear`: the plant leaves its latched safe state (watchdog, safety or deadline
  gate trip); the controller's next valid control drives it again. A plant that is ending
  (e-stop, stop signal, controller gone) cannot be cleared; the `ack` says so.

- `gains_get` / `gains_set` (`hil gains`): the plant relays them to the attached controller,
  whose law validates and applies new gains between two controls; the answer
  (`gains_reply`) comes back through the plant.

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


class GainsAnswer:
    """The controller's answer to `hil gains`: ok, why, the gain names, the gains now and
    before the request."""

    def __init__(self, m: msg.Message) -> None:
        self.ok: bool = m["ok"]
        self.detail: str = m["detail"]
        self.names: list[str] = [str(n) for n in m["names"]]
        self.values: list[float] = [float(v) for v in m["values"]]
        self.old: list[float] = [float(v) for v in m["old"]]


def gains(endpoint: str, names: list[str], values: list[float], timeout_s: float = 2.0,
          keys_dir: str | None = None) -> GainsAnswer:
    """Read (no `values`) or set the running law's gains; `names` empty: positional."""
    request_id = int.from_bytes(os.urandom(4), "big")
    payload = (msg.encode("gains_set", request_id, operator_name(), names, values) if values
               else msg.encode("gains_get", request_id, operator_name()))
    reply = _ask_for(endpoint, payload, timeout_s, keys_dir, "gains_reply", request_id)
    return GainsAnswer(reply)


def _ask(endpoint: str, payload: bytes, timeout_s: float, keys_dir: str | None) -> str:
    return str(_ask_for(endpoint, payload, timeout_s, keys_dir, "ack")["detail"])


def _ask_for(endpoint: str, payload: bytes, timeout_s: float, keys_dir: str | None,
             kind: str, request_id: int | None = None) -> msg.Message:
    sock = ControllerSocket(endpoint, curve_keys_dir=keys_dir)
    try:
        sock.send(payload)
        give_up = time.monotonic_ns() + round(timeout_s * 1e9)
        while True:
            remaining = give_up - time.monotonic_ns()
            if remaining <= 0:
                raise NoAnswer(f"no answer from a plant at {endpoint} within {timeout_s:g} s: "
                               f"is hil-plant running there? (a plant with security.curve "
                               f"on answers only with --keys)")
            if not wait_for_message(sock.sock, remaining, lambda: True):
                continue
            data = sock.recv_nowait()
            if data is None:
                continue
            try:
                m = msg.decode(data)
            except msg.MessageError:
                continue
            if m.kind == kind and (request_id is None or m["request_id"] == request_id):
                return m
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
