"""Wire messages between plant and controller: msgpack arrays, validated by one table.

Every message is a msgpack array whose first element is its kind (a short string). The
fields that follow are positional and typed by `SCHEMA` below; `decode` checks the kind, the
arity and every field's exact type before anything else looks at the message, so a malformed
message is rejected in one place and never reaches the plant. Nothing is ever unpickled.

| kind      | fields                                                                          |
|-----------|---------------------------------------------------------------------------------|
| hello     | protocol, client_name                                                           |
| welcome   | protocol, description (map: plant, names/units, limits, rate, mode, t0, clock_id) |
| refuse    | code, reason                                                                    |
| state     | seq, t_ns (plant monotonic), state (list of floats), flags                      |
| control   | seq, state_seq, u (list of floats, one per input), t_state_rx_ns, t_send_ns,    |
|           | compute_ns                                                                      |
| heartbeat | t_ns                                                                            |
| fault     | code, detail                                                                    |
| clear     | (none): the attached controller clears the plant's latched safe state          |
| bye       | reason                                                                          |
| sync      | t_ns (controller clock): the attached controller estimates the clock offset     |
| sync_reply| t_echo_ns (the sync's t_ns), t_ns (plant clock at arrival)                      |
| estop     | reason: any peer (`hil estop`); the plant goes safe and ends the run            |
| operator_clear | operator: `hil clear`, from any peer; clears the latched safe state        |
| ack       | what, detail: the plant's answer to `estop`, `operator_clear` and `push`        |
| gains_get | request_id, operator: `hil gains`; the plant relays it to the attached controller |
| gains_set | request_id, operator, names (list of str, or empty: positional), values         |
| gains_reply | request_id, ok, detail, names, values (now), old: the controller's answer,    |
|           | relayed by the plant to the operator who asked                                  |
| push      | input, value, duration_ms, operator: `hil push`; adds value to a simulated    |
|           | realtime plant's input for duration_ms (or is refused, in the ack)              |
| observe   | protocol, client: `hil watch --endpoint`; subscribes (or renews) this peer to   |
|           | `observation`s for `OBSERVE_LEASE_MS`; read-only, nothing else reaches the loop |
| observing | lease_ms, run_id, description: the plant's answer to a new subscription         |
| observation | seq, t_ns, sim_time_s, state, u, flags, steps, misses, round_trip_ns (newest   |
|           | applied control, -1: none), safe_reason, dropped (copies this observer missed:  |
|           | its queue was full): every ~1/`OBSERVE_HZ` s, a copy of the newest state        |
| error     | code, detail: the plant's answer to a message it rejected (code: the rejection  |
|           | kind, detail: the rule broken and the fix); a rejected hello gets `refuse`      |

docs/protocol.md is the specification of the link; docs/protocol-vectors.json its golden
vectors (tools/make_protocol_vectors.py makes them from this codec).

`control.u` is the plant's input vector: one number per input, in the order and units of the
description's `input_names`, `input_units` and `input_limits` (1 .. `MAX_INPUTS` entries; a
control whose length is not the plant's input count is rejected as `bad_shape` by the plant,
which knows the count). Every entry must be finite (`non_finite`). Protocol 2 made the input
a vector; a peer speaking protocol 1 (one number, `force_n`) is refused at its hello.

Frames above `MAX_MESSAGE_BYTES` are rejected as `oversized` here; frames above the
transport's cap (hil/link/transport.py, larger) never get this far: ZeroMQ drops the peer.
Inside a frame, a msgpack bin or ext, a str over `MAX_STR_BYTES` (UTF-8), an array over
`MAX_ARRAY_LEN` entries, a map over `MAX_MAP_LEN` entries or with a key that is not a str, and
nesting past the decoder's recursion limit (about 1000 levels) are `malformed`.

The codec is msgspec's, with msgpack's bytes: `decode` hands the frame to one typed decoder
built from `SCHEMA` (an array_like Struct per kind, tagged by the kind string that opens the
array), which unpacks and checks the kind, the arity and every field's exact type in C. Only a
frame it refuses goes through the table in Python (`_decode_by_table`), which names the rule
broken. The hot messages (`state`, `control`) are packed by `pack_state` / `pack_control`
straight from numbers, without building intermediate objects.
"""
from __future__ import annotations

import math
from functools import reduce
from operator import or_
from typing import Annotated, Any

import msgpack
import msgspec

PROTOCOL_VERSION = 2
MAX_MESSAGE_BYTES = 16 * 1024
MAX_STATE_DIM = 32
MAX_INPUT_DIM = 8  # hil.dynamics.inputs.MAX_INPUTS
MAX_STR_BYTES = 8192
MAX_ARRAY_LEN = 4096
MAX_MAP_LEN = 1024
# The longest `push` (`hil push`) the plant takes: an operator's shove, not a control law.
MAX_PUSH_MS = 10_000.0

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
    `value` carries the offending value where there is one (the NaN of a `non_finite`),
    `of` the kind of the message refused when it could be read ("" otherwise), so that the
    answer fits what the peer waits for (a `refuse` to a hello)."""

    def __init__(self, kind: str, detail: str, value: object = None, of: str = "") -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
        self.value = value
        self.of = of


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
        ("u", (list,)),
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
    "push": (("input", (str,)), ("value", _NUM), ("duration_ms", _NUM), ("operator", (str,))),
    "gains_get": (("request_id", _INT), ("operator", (str,))),
    "gains_set": (("request_id", _INT), ("operator", (str,)), ("names", (list,)),
                  ("values", (list,))),
    "gains_reply": (("request_id", _INT), ("ok", (bool,)), ("detail", (str,)),
                    ("names", (list,)), ("values", (list,)), ("old", (list,))),
    "observe": (("protocol", _INT), ("client", (str,))),
    "observing": (("lease_ms", _INT), ("run_id", (str,)), ("description", (dict,))),
    "observation": (("seq", _INT), ("t_ns", _INT), ("sim_time_s", _NUM), ("state", (list,)),
                    ("u", (list,)), ("flags", _INT), ("steps", _INT), ("misses", _INT),
                    ("round_trip_ns", _INT), ("safe_reason", (str,)), ("dropped", _INT)),
    "error": (("code", (str,)), ("detail", (str,))),
}

# The vector fields, each 1 .. its limit numbers, int or float (`bad_shape`, `bad_type`).
_VECTOR_FIELDS: dict[str, dict[str, int]] = {
    "state": {"state": MAX_STATE_DIM},
    "control": {"u": MAX_INPUT_DIM},
    "observation": {"state": MAX_STATE_DIM, "u": MAX_INPUT_DIM},
}

# Per kind: field names, and the exact types each accepts (the table's checks).
_COMPILED: dict[str, tuple[tuple[str, ...], tuple[frozenset[type], ...]]] = {
    kind: (tuple(n for n, _ in spec), tuple(frozenset(t) for _, t in spec))
    for kind, spec in SCHEMA.items()
}

# The typed decoder's field types: the same exact types (msgspec takes no bool for an int, no
# float for an int, no bin for a str). Fields of free content (str, list, map) are checked for
# the unpacking limits after the typed decode: msgspec has no such limits.


def _vector(limit: int) -> Any:
    return Annotated[list[int | float], msgspec.Meta(min_length=1, max_length=limit)]

_WIRE_TYPE: dict[tuple[type, ...], Any] = {
    _INT: int, _NUM: int | float, (bool,): bool, (str,): str, (list,): list[Any],
    (dict,): dict[str, Any],
}
_FREE = frozenset({(str,), (list,), (dict,)})


def _wire_struct(kind: str) -> type[msgspec.Struct]:
    vectors = _VECTOR_FIELDS.get(kind, {})
    fields = [(name, _vector(vectors[name]) if name in vectors else _WIRE_TYPE[types])
              for name, types in SCHEMA[kind]]
    return msgspec.defstruct(f"{kind}_wire", fields, array_like=True, tag=kind,
                             forbid_unknown_fields=True)


_KIND_OF_STRUCT: dict[type[msgspec.Struct], str] = {_wire_struct(k): k for k in SCHEMA}
_FREE_FIELDS: dict[str, tuple[str, ...]] = {
    kind: tuple(name for name, types in spec
                if types in _FREE and name not in _VECTOR_FIELDS.get(kind, {}))
    for kind, spec in SCHEMA.items()
}
_typed_decoder = msgspec.msgpack.Decoder(reduce(or_, _KIND_OF_STRUCT))
_plain_decoder = msgspec.msgpack.Decoder()
_as_fields = msgspec.structs.asdict


def _encode_subclass(value: object) -> object:
    """msgpack packs a subclass of float, int or str (numpy's float64) as its base; so do we."""
    for base in (float, int, str):
        if isinstance(value, base):
            return base(value)
    raise TypeError(f"a message field cannot be {type(value).__name__}: send int, float, "
                    "str, bool, None, list, tuple or dict")


_encoder = msgspec.msgpack.Encoder(enc_hook=_encode_subclass)
_pack = _encoder.encode


class Message(msgspec.Struct, frozen=True):
    """A decoded, validated message: its kind and its fields by name, `Message(kind, fields)`.

    A msgspec Struct, not a dataclass: one is built for every message on the hot path, and a
    Struct's __init__ (in C) costs half a slotted class's. Frozen: treat `fields` as read-only
    too.
    """

    kind: str
    fields: dict[str, Any]

    def __repr__(self) -> str:
        return f"Message({self.kind!r}, {self.fields!r})"

    def __getitem__(self, name: str) -> Any:
        return self.fields[name]


def encode(kind: str, *fields: Any) -> bytes:
    """Pack a message of `kind`; raises ValueError if the fields do not match the schema."""
    spec = SCHEMA.get(kind)
    if spec is None:
        raise ValueError(f"unknown message kind {kind!r}; known: {sorted(SCHEMA)}")
    if len(fields) != len(spec):
        raise ValueError(f"{kind} takes {len(spec)} fields, got {len(fields)}")
    return _pack((kind, *fields))


def pack_state(seq: int, t_ns: int, state: list[float], flags: int) -> bytes:
    """Hot path: a `state` message. `state` is a list of floats (``ndarray.tolist()``)."""
    return _pack(("state", seq, t_ns, state, flags))


def pack_control(
    seq: int, state_seq: int, u: list[float], t_state_rx_ns: int, t_send_ns: int, compute_ns: int
) -> bytes:
    """Hot path: a `control` message; `u` is a list of floats, one per input."""
    return _pack(("control", seq, state_seq, u, t_state_rx_ns, t_send_ns, compute_ns))


def pack_observation(seq: int, t_ns: int, sim_time_s: float, state: list[float],
                     u: list[float], flags: int, steps: int, misses: int, round_trip_ns: int,
                     safe_reason: str, dropped: int) -> bytes:
    """An `observation` (a plant's copy of its newest state and input for an observer)."""
    return _pack(("observation", seq, t_ns, sim_time_s, state, u, flags, steps, misses,
                  round_trip_ns, safe_reason, dropped))


def decode(data: bytes) -> Message:
    """Unpack and validate one message; raises MessageError naming the rejection kind."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise MessageError("oversized", f"{len(data)} bytes > {MAX_MESSAGE_BYTES}",
                           of=peek_kind(data))
    try:
        wire = _typed_decoder.decode(data)
    except Exception:  # refused (or nested past the recursion limit): the table says why
        return _decode_by_table(data)
    kind = _KIND_OF_STRUCT[type(wire)]
    fields = _as_fields(wire)
    try:
        if kind == "control":
            check_finite_u(fields["u"])
        else:
            for name in _FREE_FIELDS[kind]:
                _check_limits(fields[name])
    except MessageError as exc:
        exc.of = kind
        raise
    return Message(kind, fields)


def _decode_by_table(data: bytes) -> Message:
    """The table's checks on a plain unpack, in order: the first rule broken is the error."""
    try:
        obj = _plain_decoder.decode(data)
    except Exception as exc:  # truncated, trailing bytes, bad UTF-8, a never-used byte, depth
        raise MessageError("malformed", f"not msgpack: {exc}", of=peek_kind(data)) from None
    kind = obj[0] if type(obj) is list and obj and type(obj[0]) is str else None
    try:
        return _checked_by_table(obj, kind)
    except MessageError as exc:
        exc.of = kind if kind in SCHEMA else ""
        raise


def _checked_by_table(obj: Any, kind: str | None) -> Message:
    _check_limits(obj)
    if kind is None:
        raise MessageError("malformed", "not an array starting with a kind string")
    spec = SCHEMA.get(kind)
    if spec is None:
        raise MessageError("unknown_kind", f"unknown kind {kind[:32]!r}")
    if len(obj) != len(spec) + 1:
        raise MessageError("bad_arity", f"{kind} takes {len(spec)} fields, got {len(obj) - 1}")
    names, exact = _COMPILED[kind]
    for name, allowed, value in zip(names, exact, obj[1:], strict=True):
        if type(value) not in allowed:  # exact types: the unpacker yields no subclasses
            raise MessageError("bad_type", f"{kind}.{name} has type {type(value).__name__}")
    fields = dict(zip(names, obj[1:], strict=True))
    for name, limit in _VECTOR_FIELDS.get(kind, {}).items():
        _check_vector(f"{kind}.{name}", fields[name], limit)
    if kind == "control":
        check_finite_u(fields["u"])
    return Message(kind, fields)


def peek_head(data: bytes, count: int) -> list[Any] | None:
    """The first `count` items of a frame's array (short texts only), read without unpacking
    the rest: what a frame too large or too broken to decode begins with; None when it does
    not begin so."""
    unpacker = msgpack.Unpacker(max_buffer_size=max(1, len(data)), max_str_len=64)
    unpacker.feed(data)
    try:
        if unpacker.read_array_header() < count:
            return None
        return [unpacker.unpack() for _ in range(count)]
    except Exception:  # not an array, or its first items are not short
        return None


def peek_kind(data: bytes) -> str:
    """The kind a frame says it is (its array's first element, a known kind), read without
    unpacking the rest: what a frame too large or too broken to decode was meant to be, so
    its answer fits what the sender waits for; "" when it says none."""
    head = peek_head(data, 1)
    kind = head[0] if head else ""
    return kind if type(kind) is str and kind in SCHEMA else ""


def check_finite_u(u: list[float]) -> None:
    """A control's inputs, each finite, or MessageError `non_finite` naming the first that is
    not (for every transport: shared memory's controls are checked here too)."""
    if math.isfinite(u[0]) if len(u) == 1 else all(map(math.isfinite, u)):
        return
    i, value = next((i, v) for i, v in enumerate(u) if not math.isfinite(v))
    raise MessageError("non_finite", f"control.u[{i}] is {value}", value)


def _check_vector(where: str, values: list[Any], limit: int) -> None:
    if not 0 < len(values) <= limit:
        raise MessageError("bad_shape", f"{where} has {len(values)} entries (1 .. {limit})")
    for v in values:
        if type(v) is not float and type(v) is not int:
            raise MessageError("bad_type", f"{where} entry of type {type(v).__name__}")


_LEAVES = frozenset({type(None), bool, int, float})


def _check_limits(value: object) -> None:
    """The unpacking limits (module docstring), over a value and all it holds."""
    pending = [value]
    while pending:
        item = pending.pop()
        if type(item) is str:
            if len(item.encode()) > MAX_STR_BYTES:
                raise MessageError("malformed", f"a str of {len(item.encode())} bytes > "
                                   f"{MAX_STR_BYTES}")
        elif type(item) is list:
            if len(item) > MAX_ARRAY_LEN:
                raise MessageError("malformed", f"an array of {len(item)} > {MAX_ARRAY_LEN}")
            pending.extend(item)
        elif type(item) is dict:
            _check_map(item)
            pending.extend(item)
            pending.extend(item.values())
        elif type(item) not in _LEAVES:
            what = "bin" if type(item) is bytes else "ext"
            raise MessageError("malformed", f"msgpack {what} is not accepted (text is str)")


def _check_map(item: dict[Any, Any]) -> None:
    if len(item) > MAX_MAP_LEN:
        raise MessageError("malformed", f"a map of {len(item)} > {MAX_MAP_LEN}")
    for key in item:
        if type(key) is not str:
            raise MessageError("malformed", f"a map key of type {type(key).__name__}: keys "
                               "are str")
