"""Operator commands to a running plant: `hil estop`, `hil clear`, `hil gains`, `hil push`.

Each connects to the plant's endpoint as a peer of its own (never as the controller), sends
one message and waits for the plant's `ack`:

- `estop` (any peer): the plant applies its safe output at once, tells the attached
  controller (`fault` "estop"), ends the run and writes its report.
- `operator_clear`: the plant leaves its latched safe state (watchdog, safety or deadline
  gate trip); the controller's next valid control drives it again. A plant that is ending
  (e-stop, stop signal, controller gone) cannot be cleared; the `ack` says so.

- `push` (`hil push`): the plant adds a value to one input of its simulated plant for a
  while (a realtime run, not latched, the value within the input's limits); its `ack` says
  "pushed ..." or "refused: ..." and why.

- `gains_get` / `gains_set` (`hil gains`): the plant relays them to the attached controller,
  whose law validates and applies new gains between two controls; the answer
  (`gains_reply`) comes back through the plant.

The plant binds to loopback by default, so only this machine can send these; over a
network, connections are to be authenticated (docs/design.md, "Safety model"). A plant with
`security.curve` on refuses a client without keys, or with a key it has not authorized, in
the connection's handshake: the client watches its socket's handshake and raises `Refused`
saying which (at once, not after the timeout).
"""

from __future__ import annotations

import getpass
import math
import os
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from hil.link import messages as msg
from hil.link.transport import ControllerSocket

# The longest wait for a plant's answer: longer is a mistake (a handshake takes milliseconds).
MAX_TIMEOUT_S = 3600.0


class BadRequest(ValueError):
    """The request cannot be sent as given: an endpoint ZeroMQ cannot connect to, a gain that
    is not finite, text that is not valid UTF-8, or a message over the protocol's bounds
    (hil/link/messages.py). Raised before anything is sent; the message names the value and
    the limit."""


class NoAnswer(Exception):
    """The plant did not acknowledge within the timeout (not running there?)."""


class Refused(NoAnswer):
    """The plant's security refused the connection (CURVE on and no keys, a key it does not
    authorize, or keys given to a plant without CURVE); the message says which and the fix."""


class PlantError(Refused):
    """The plant answered the request with an `error`: the protocol rule it broke there (a
    plant of another protocol version that does not know the request: unknown_kind)."""


# Handshakes the plant broke off (connection reset, no reason given) before they count as a
# refusal: libzmq reports a CURVE plant's refusal of a plain client either as a protocol
# failure or, when the plant's reset overtakes its greeting, as a failure without detail; the
# client then retries every ~0.1 s and may lose that race many times in a row (29 s was seen).
# A plant that speaks our protocol never breaks off a handshake otherwise.
BROKEN_HANDSHAKES_REFUSE = 3


class _HandshakeWatch:
    """Reads the socket monitor's handshake events; `refusal()` the message once they show
    the plant refused the connection (a protocol or authentication failure, or
    BROKEN_HANDSHAKES_REFUSE handshakes broken off in a row), else None."""

    EVENTS = (zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH
              | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_SUCCEEDED)

    def __init__(self, endpoint: str, keys_dir: str | None) -> None:
        self.endpoint, self.keys_dir, self.broken = endpoint, keys_dir, 0

    def refusal(self, event: int) -> str | None:
        if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
            self.broken = 0
            return None
        if event == zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL:
            self.broken += 1
            if self.broken < BROKEN_HANDSHAKES_REFUSE:
                return None
            event = zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
        return _refusal(event, self.endpoint, self.keys_dir)


def _refusal(event: int, endpoint: str, keys_dir: str | None) -> str | None:
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        key = Path(keys_dir or ".") / "controller.key"
        return (f"the plant at {endpoint} refused this client's CURVE key ({key}): it is not "
                f"among the plant's authorized keys; pass --keys with the folder of keys the "
                f"plant trusts, or add {key} to its authorized folder")
    if event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
        if keys_dir is None:
            return (f"the plant at {endpoint} refused the connection: it requires CURVE "
                    f"(security.curve on); pass --keys DIR, the keys folder made by hil keygen")
        return (f"the plant at {endpoint} refused the CURVE handshake: is security.curve off "
                f"there? Then drop --keys")
    return None


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
    """Read (no `values`) or set the running law's gains; `names` empty: positional.
    BadRequest (nothing sent) for a non-finite gain or a request over the protocol's bounds."""
    for i, value in enumerate(values):
        if not math.isfinite(value):
            label = repr(names[i]) if i < len(names) else f"#{i + 1}"
            raise BadRequest(f"gain {label} is {value!r}: gains are finite numbers")
    request_id = int.from_bytes(os.urandom(4), "big")
    payload = (request("gains_set", request_id, operator_name(), names, values) if values
               else request("gains_get", request_id, operator_name()))
    reply = _ask_for(endpoint, payload, timeout_s, keys_dir, "gains_reply", request_id)
    return GainsAnswer(reply)


def request(kind: str, *fields: Any) -> bytes:
    """The message `kind` as the plant will take it: checked against the protocol's own
    bounds (hil/link/messages.py: size, list and text lengths) by decoding it here, so a
    request the plant would drop as malformed or oversized is refused before it is sent."""
    try:
        payload = msg.encode(kind, *fields)
    except UnicodeEncodeError as exc:
        raise BadRequest(f"{kind}: {exc.object[exc.start:exc.end]!a} is not valid text "
                         "(UTF-8); retype it") from None
    try:
        msg.decode(payload)
    except msg.MessageError as exc:
        raise BadRequest(_over_bounds(kind, fields, len(payload), exc)) from None
    return payload


def _over_bounds(kind: str, fields: Sequence[Any], size: int, exc: msg.MessageError) -> str:
    what = f"a {kind} of {len(fields[3])} values" if kind == "gains_set" else f"the {kind}"
    if exc.kind == "oversized":
        return (f"{what} makes a {size}-byte message, over the protocol's "
                f"{msg.MAX_MESSAGE_BYTES}-byte limit (MAX_MESSAGE_BYTES, hil/link/messages.py); "
                "send fewer or shorter values")
    texts = [f for f in fields if isinstance(f, str)]
    texts += [t for f in fields if isinstance(f, list) for t in f if isinstance(t, str)]
    longest = max((len(t) for t in texts), default=0)
    return (f"{what} is over the protocol's bounds on text and list lengths (its longest text "
            f"is {longest} characters; hil/link/messages.py, decode: {exc.detail}); send "
            "shorter names or fewer values")


def _ask(endpoint: str, payload: bytes, timeout_s: float, keys_dir: str | None) -> str:
    return str(_ask_for(endpoint, payload, timeout_s, keys_dir, "ack")["detail"])


def connect(endpoint: str, keys_dir: str | None) -> ControllerSocket:
    """A client socket to the plant at `endpoint` (with the CURVE keys in `keys_dir`, if
    any); BadRequest when ZeroMQ cannot use the endpoint, CurveKeyError for the keys."""
    try:
        return ControllerSocket(endpoint, curve_keys_dir=keys_dir)
    except zmq.ZMQError as exc:
        raise BadRequest(f"endpoint {endpoint!a}: ZeroMQ cannot connect to it "
                         f"({exc.strerror}); give tcp://HOST:PORT or ipc://PATH") from None


def _ask_for(endpoint: str, payload: bytes, timeout_s: float, keys_dir: str | None,
             kind: str, request_id: int | None = None) -> msg.Message:
    sock = connect(endpoint, keys_dir)

    def answer() -> msg.Message | None:
        data = sock.recv_nowait()
        if data is None:
            return None
        try:
            m = msg.decode(data)
        except msg.MessageError:
            return None
        if m.kind == "error":
            sent = msg.peek_kind(payload)
            raise PlantError(f"the plant at {endpoint} answered the {sent} with error "
                             f"{m['code']}: {m['detail']} (a hil-plant of another version? "
                             f"both ends must speak protocol {msg.PROTOCOL_VERSION})")
        if m.kind == kind and (request_id is None or m["request_id"] == request_id):
            return m
        return None

    try:
        return await_answer(sock.sock, endpoint, keys_dir, timeout_s,
                            lambda: sock.send(payload), answer)
    finally:
        sock.close()


def await_answer(raw: zmq.Socket[bytes], endpoint: str, keys_dir: str | None, timeout_s: float,
                 ask: Callable[[], object], answer: Callable[[], msg.Message | None]
                 ) -> msg.Message:
    """Connect `raw` to `endpoint` with its handshake watched, `ask()`, then return the first
    message `answer()` takes (it is called whenever `raw` is readable); Refused when the plant
    refuses the CURVE handshake (naming the key), NoAnswer after `timeout_s`; BadRequest,
    before anything, for a `timeout_s` that is not in 0 < t <= MAX_TIMEOUT_S."""
    if not 0 < timeout_s <= MAX_TIMEOUT_S:  # nan too: it would never end, or not convert
        raise BadRequest(f"timeout_s must be in 0 < t <= {MAX_TIMEOUT_S:g} s, got {timeout_s!r}")
    # Watch the handshake from its start: connect again once the monitor is on.
    raw.disconnect(endpoint)
    monitor = raw.get_monitor_socket(_HandshakeWatch.EVENTS)
    watch = _HandshakeWatch(endpoint, keys_dir)
    try:
        raw.connect(endpoint)
        ask()
        poller = zmq.Poller()
        poller.register(raw, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        give_up = time.monotonic_ns() + round(timeout_s * 1e9)
        while True:
            remaining = give_up - time.monotonic_ns()
            if remaining <= 0:
                raise NoAnswer(f"no answer from a plant at {endpoint} within {timeout_s:g} s: "
                               f"is hil-plant running there? (a plant with security.curve "
                               f"on answers only with --keys)")
            ready = dict(poller.poll(max(1, remaining // 1_000_000)))
            if monitor in ready:
                refusal = watch.refusal(recv_monitor_message(monitor)["event"])
                if refusal is not None:
                    raise Refused(refusal)
            if raw in ready and (m := answer()) is not None:
                return m
    finally:
        raw.disable_monitor()
        monitor.close(linger=0)


def operator_name() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()} pid {os.getpid()}"


def estop(endpoint: str, reason: str, timeout_s: float = 2.0, keys_dir: str | None = None
          ) -> str:
    """E-stop the plant at `endpoint`; the plant's acknowledgement, or NoAnswer.
    `keys_dir`: CURVE keys for a plant that requires them (hil/link/security.py)."""
    return _ask(endpoint, request("estop", reason), timeout_s, keys_dir)


def clear(endpoint: str, timeout_s: float = 2.0, keys_dir: str | None = None) -> str:
    """Clear the plant's latched safe state; its answer ("cleared: ...", "nothing to clear",
    "cannot clear: ..."), or NoAnswer."""
    return _ask(endpoint, request("operator_clear", operator_name()), timeout_s, keys_dir)


def push(endpoint: str, input_name: str, value: float, duration_ms: float,
         timeout_s: float = 2.0, keys_dir: str | None = None) -> str:
    """Add `value` to input `input_name` of the plant at `endpoint` for `duration_ms`; the
    plant's answer ("pushed ..." or "refused: ..."), or NoAnswer. BadRequest (nothing sent)
    for a value that is not finite or a duration not in 0 < ms <= MAX_PUSH_MS
    (hil/link/messages.py)."""
    if not math.isfinite(value):
        raise BadRequest(f"push {input_name}={value!r}: a push is a finite number")
    if not 0.0 < duration_ms <= msg.MAX_PUSH_MS:  # nan too
        raise BadRequest(f"push --for: the duration must be in 0 < ms <= "
                         f"{msg.MAX_PUSH_MS:g}, got {duration_ms!r} ms")
    return _ask(endpoint, request("push", input_name, float(value), float(duration_ms),
                                  operator_name()), timeout_s, keys_dir)
