"""Wire messages between plant and controller: msgpack arrays, validated by one table.

Every message is a msgpack array whose first element is its kind (a short string). The
fields that follow are positional and typed by `SCHEMA` below; `decode` checks the kind, the
arity and every field's type before anything else looks at the message, so a malformed
message is rejected in one place and never reaches the plant. Nothing is ever unpickled.

| kind      | fields                                                                          |
|-----------|---------------------------------------------------------------------------------|
| hello     | protocol, client_name                                                           |
| welcome   | protocol, description (map: plant, names/units, limits, rate, mode, t0, clock_id) |
| refuse    | code, reason                                                                    |
| state     | seq, t_ns (plant monotonic), state (list of floats), flags                      |
| control   | seq, state_seq, force_n, t_state_rx_ns, t_send_ns, compute_ns                   |
| heartbeat | t_ns                                                                            |
| fault     | code, detail                                                                    |
| clear     | (none): the attached controller clears the plant's latched safe state          |
| bye       | reason                                                                          |
| sync      | t_ns (controller clock): the attached controller estimates the clock offset     |
| sync_reply| t_echo_ns (the sync's t_ns), t_ns (plant clock at arrival)                      |
| estop     | reason: any peer (`hil estop`); the plant goes safe and ends the run            |
| operator_clear | operator: `hil clear`, from any peer; clears the latched safe state        |
| ack       | what, detail: the plant's answer to `estop` and `operator_clear`                |
| gains_get | request_id, operator: `hil gains`; the plant relays it to the attached controller |
| gains_set | request_id, operator, names (list of str, or empty: positional), values         |
| gains_reply | request_id, ok, detail, names, values (now), old: the controller's answer,    |
|           | relayed by the plant to the operator who asked                                  |
| observe   | protocol, client: `hil watch --endpoint`; subscribes (or renews) this peer to   |
|           | `observation`s for `OBSERVE_LEASE_MS`; read-only, nothing else reaches the loop |
| observing | lease_ms, run_id, description: the plant's answer to a new subscription         |
| observation | seq, t_ns, sim_time_s, state, input, flags, steps, misses, round_trip_ns (newest |
|           | applied control, -1: none), safe_reason, dropped (copies this observer missed:  |
|           | its queue was full): every ~1/`OBSERVE_HZ` s, a copy of the newest state        |

`control.force_n` is the plant's input in the unit its description gives (`input_name`,
`input_unit`, limit `max_force_n`): a force in N for a cart, a voltage in V for the rotary.
The field keeps its name whatever the input is; the wire format does not change.

Frames above `MAX_MESSAGE_BYTES` are rejected as `oversized` here; frames above the
transport's cap (hil/link/transport.py, larger) never get this far: ZeroMQ drops the peer.

The hot messages (`state`, `control`) are packed by `pack_state` / `pack_control` straight
from numbers, without building intermediate objects.
"""

from __future__ import annotations

import math
from typing import Any

import msgpack

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 16 * 1024
MAX_STATE_DIM = 32

# State flags (bit field in `state` messages).
FLAG_SAFE = 1  # the plant is applying its safe output
FLAG_WATCHDOG = 2  # the watchdog has tripped and is latched
FLAG_SAFETY = 4  # a safety gate has tripped
FLAG_FINAL = 8  # last state of the run

# Observers (`hil watch --endpoint`): the plant sends each subscribed peer a copy of about
# OBSERVE_HZ states a second; a subscription not renewed within OBSERVE_LEASE_MS expires.
OBSERVE_HZ = 40
OBSERVE_LEASE_MS = 2000
MAX_OBSERVERS = 4


class MessageError(ValueError):
    """A message from the peer is malformed; `kind` names the rejection class for counting,
    `value` carries the offending value where there is one (the NaN of a `non_finite`)."""

    def __init__(self, kind: str, detail: str, value: object = None) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
        self.value = value


_INT = (int,)
_NUM = (int, float)

# kind -> tuple of (field name, accepted python types after msgpack decoding)
SCHEMA: dict[str, tuple[tuple[str, tuple[type, ...]], ...]] = {
    "hello": (("protocol", _INT), ("client", (str,))),
    "welcome": (("protocol", _INT), ("description", (dict,))),
    "refuse": (("code", (str,)), ("reason", (str,))),
    "state": (("seq", _INT), ("t_ns", _INT), ("state", (list,)), ("flags", _INT)),
    "control": (
        ("seq", _INT),
        ("state_seq", _INT),
        ("force_n", _NUM),
        ("t_state_rx_ns", _INT),
        ("t_send_ns", _INT),
        ("compute_ns", _INT),
    ),
    "heartbeat": (("t_ns", _INT),),
    "fault": (("code", (str,)), ("detail", (str,))),
    "clear": (),
    "bye": (("reason", (str,)),),
    "sync": (("t_ns", _INT),),
    "sync_reply": (("t_echo_ns", _INT), ("t_ns", _INT)),
    "estop": (("reason", (str,)),),
    "operator_clear": (("operator", (str,)),),
    "ack": (("what", (str,)), ("detail", (str,))),
    "gains_get": (("request_id", _INT), ("operator", (str,))),
    "gains_set": (("request_id", _INT), ("operator", (str,)), ("names", (list,)),
                  ("values", (list,))),
    "gains_reply": (("request_id", _INT), ("ok", (bool,)), ("detail", (str,)),
                    ("names", (list,)), ("values", (list,)), ("old", (list,))),
    "observe": (("protocol", _INT), ("client", (str,))),
    "observing": (("lease_ms", _INT), ("run_id", (str,)), ("description", (dict,))),
    "observation": (("seq", _INT), ("t_ns", _INT), ("sim_time_s", _NUM), ("state", (list,)),
                    ("input", _NUM), ("flags", _INT), ("steps", _INT), ("misses", _INT),
                    ("round_trip_ns", _INT), ("safe_reason", (str,)), ("dropped", _INT)),
}

# Per kind: field names, and the exact types each accepts (decode's hot path).
_COMPILED: dict[str, tuple[tuple[str, ...], tuple[frozenset[type], ...]]] = {
    kind: (tuple(n for n, _ in spec), tuple(frozenset(t) for _, t in spec))
    for kind, spec in SCHEMA.items()
}


class Message:
    """A decoded, validated message: its kind and its fields by name.

    A plain slotted class, not a frozen dataclass: this is built for every message on the hot
    path and a frozen dataclass's __init__ costs several times more. Treat it as read-only.
    """

    __slots__ = ("fields", "kind")

    def __init__(self, kind: str, fields: dict[str, Any]) -> None:
        self.kind = kind
        self.fields = fields

    def __repr__(self) -> str:
        return f"Message({self.kind!r}, {self.fields!r})"

    def __getitem__(self, name: str) -> Any:
        return self.fields[name]


_packer = msgpack.Packer(use_bin_type=True)


def encode(kind: str, *fields: Any) -> bytes:
    """Pack a message of `kind`; raises ValueError if the fields do not match the schema."""
    spec = SCHEMA.get(kind)
    if spec is None:
        raise ValueError(f"unknown message kind {kind!r}; known: {sorted(SCHEMA)}")
    if len(fields) != len(spec):
        raise ValueError(f"{kind} takes {len(spec)} fields, got {len(fields)}")
    packed: bytes = _packer.pack([kind, *fields])
    return packed


def pack_state(seq: int, t_ns: int, state: list[float], flags: int) -> bytes:
    """Hot path: a `state` message. `state` is a list of floats (``ndarray.tolist()``)."""
    packed: bytes = _packer.pack(("state", seq, t_ns, state, flags))
    return packed


def pack_control(
    seq: int, state_seq: int, force_n: float, t_state_rx_ns: int, t_send_ns: int, compute_ns: int
) -> bytes:
    """Hot path: a `control` message."""
    packed: bytes = _packer.pack(
        ("control", seq, state_seq, force_n, t_state_rx_ns, t_send_ns, compute_ns))
    return packed


def pack_observation(seq: int, t_ns: int, sim_time_s: float, state: list[float], force: float,
                     flags: int, steps: int, misses: int, round_trip_ns: int, safe_reason: str,
                     dropped: int) -> bytes:
    """An `observation` (a plant's copy of its newest state for an observer)."""
    packed: bytes = _packer.pack(("observation", seq, t_ns, sim_time_s, state, force, flags,
                                  steps, misses, round_trip_ns, safe_reason, dropped))
    return packed


def decode(data: bytes) -> Message:
    """Unpack and validate one message; raises MessageError naming the rejection kind."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise MessageError("oversized", f"{len(data)} bytes > {MAX_MESSAGE_BYTES}")
    try:
        obj = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            max_array_len=4096,
            max_map_len=1024,
            max_str_len=8192,
            max_bin_len=0,
            max_ext_len=0,
        )
    except Exception as exc:  # msgpack raises many types for garbage
        raise MessageError("malformed", f"not msgpack ({type(exc).__name__})") from None
    if not isinstance(obj, list) or not obj or not isinstance(obj[0], str):
        raise MessageError("malformed", "not an array starting with a kind string")
    kind = obj[0]
    spec = SCHEMA.get(kind)
    if spec is None:
        raise MessageError("unknown_kind", f"unknown kind {kind[:32]!r}")
    if len(obj) != len(spec) + 1:
        raise MessageError("bad_arity", f"{kind} takes {len(spec)} fields, got {len(obj) - 1}")
    names, exact = _COMPILED[kind]
    for name, allowed, value in zip(names, exact, obj[1:], strict=True):
        if type(value) not in allowed:  # exact types: msgpack yields no subclasses; bool is out
            raise MessageError("bad_type", f"{kind}.{name} has type {type(value).__name__}")
    if kind == "state" or kind == "observation":
        _check_vector(obj[4] if kind == "observation" else obj[3])
    elif kind == "control" and not math.isfinite(obj[3]):
        raise MessageError("non_finite", f"control.force_n is {obj[3]}", obj[3])
    return Message(kind, dict(zip(names, obj[1:], strict=True)))


def _check_vector(values: list[Any]) -> None:
    if not 0 < len(values) <= MAX_STATE_DIM:
        raise MessageError("bad_shape", f"state has {len(values)} entries")
    for v in values:
        if type(v) is not float and type(v) is not int:
            raise MessageError("bad_type", f"state entry of type {type(v).__name__}")
