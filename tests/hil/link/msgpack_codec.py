"""The wire codec as it was on msgpack, kept as the reference the msgspec codec is held to.

`hil.link.messages` decodes with msgspec; its tests compare it with this codec (the same bytes
out, the same messages and rejection kinds in), and benchmarks/bench_codec.py measures both
side by side. Same table (`messages.SCHEMA`), same limits; only the library differs.
"""

from __future__ import annotations

import math
from typing import Any

import msgpack

from hil.link import messages as msg

_packer = msgpack.Packer(use_bin_type=True)
_EXACT = {kind: (tuple(n for n, _ in spec), tuple(frozenset(t) for _, t in spec))
          for kind, spec in msg.SCHEMA.items()}


def encode(kind: str, *fields: Any) -> bytes:
    packed: bytes = _packer.pack([kind, *fields])
    return packed


def pack_state(seq: int, t_ns: int, state: list[float], flags: int) -> bytes:
    packed: bytes = _packer.pack(("state", seq, t_ns, state, flags))
    return packed


def pack_control(seq: int, state_seq: int, u: list[float], t_state_rx_ns: int, t_send_ns: int,
                 compute_ns: int) -> bytes:
    packed: bytes = _packer.pack(
        ("control", seq, state_seq, u, t_state_rx_ns, t_send_ns, compute_ns))
    return packed


# Per kind, the vector fields (their positions in the message array) and their limits.
_VECTORS: dict[str, tuple[tuple[str, int, int], ...]] = {
    "state": (("state", 3, msg.MAX_STATE_DIM),),
    "control": (("u", 3, msg.MAX_INPUT_DIM),),
    "observation": (("state", 4, msg.MAX_STATE_DIM), ("u", 5, msg.MAX_INPUT_DIM)),
}


def decode(data: bytes) -> msg.Message:
    if len(data) > msg.MAX_MESSAGE_BYTES:
        raise msg.MessageError("oversized", f"{len(data)} bytes > {msg.MAX_MESSAGE_BYTES}")
    try:
        obj = msgpack.unpackb(data, raw=False, strict_map_key=True,
                              max_array_len=msg.MAX_ARRAY_LEN, max_map_len=msg.MAX_MAP_LEN,
                              max_str_len=msg.MAX_STR_BYTES, max_bin_len=0, max_ext_len=0)
    except Exception as exc:  # msgpack raises many types for garbage
        raise msg.MessageError("malformed", f"not msgpack ({type(exc).__name__})") from None
    if not isinstance(obj, list) or not obj or not isinstance(obj[0], str):
        raise msg.MessageError("malformed", "not an array starting with a kind string")
    kind = obj[0]
    spec = msg.SCHEMA.get(kind)
    if spec is None:
        raise msg.MessageError("unknown_kind", f"unknown kind {kind[:32]!r}")
    if len(obj) != len(spec) + 1:
        raise msg.MessageError("bad_arity",
                               f"{kind} takes {len(spec)} fields, got {len(obj) - 1}")
    names, exact = _EXACT[kind]
    for name, allowed, value in zip(names, exact, obj[1:], strict=True):
        if type(value) not in allowed:
            raise msg.MessageError("bad_type", f"{kind}.{name} has type {type(value).__name__}")
    for name, at, limit in _VECTORS.get(kind, ()):
        _check_vector(f"{kind}.{name}", obj[at], limit)
    if kind == "control":
        for i, v in enumerate(obj[3]):
            if not math.isfinite(v):
                raise msg.MessageError("non_finite", f"control.u[{i}] is {v}", v)
    return msg.Message(kind, dict(zip(names, obj[1:], strict=True)))


def _check_vector(where: str, values: list[Any], limit: int) -> None:
    if not 0 < len(values) <= limit:
        raise msg.MessageError("bad_shape", f"{where} has {len(values)} entries (1 .. {limit})")
    for v in values:
        if type(v) is not float and type(v) is not int:
            raise msg.MessageError("bad_type", f"{where} entry of type {type(v).__name__}")
