"""The msgspec codec against the msgpack one it replaced (tests/hil/link/msgpack_codec.py):
the same bytes out for every kind, the same messages and rejection kinds in."""

from __future__ import annotations

import math
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgpack_codec import decode as msgpack_decode
from msgpack_codec import encode as msgpack_encode
from msgpack_codec import pack_control as msgpack_pack_control
from msgpack_codec import pack_state as msgpack_pack_state

from hil.link import messages as msg

BIG = 2**64 - 1
SMALLEST = -(2**63)
TEXT = "çà ∂ 🚀 ü" * 3

SCALARS = (st.none() | st.booleans() | st.integers(SMALLEST, BIG) | st.floats()
           | st.text(max_size=12))
ANY = st.recursive(SCALARS, lambda c: st.lists(c, max_size=5)
                   | st.dictionaries(st.text(max_size=6), c, max_size=4), max_leaves=12)
NUMBER = st.integers(SMALLEST, BIG) | st.floats()
VECTOR = st.lists(st.floats() | st.integers(SMALLEST, BIG), min_size=1,
                  max_size=msg.MAX_STATE_DIM)
INPUTS = st.lists(st.floats() | st.integers(SMALLEST, BIG), min_size=1,
                  max_size=msg.MAX_INPUT_DIM)
FIELD: dict[tuple[type, ...], st.SearchStrategy[Any]] = {
    (int,): st.integers(SMALLEST, BIG),
    (int, float): NUMBER,
    (str,): st.text(max_size=40),
    (bool,): st.booleans(),
    (list,): st.lists(ANY, max_size=6),
    (dict,): st.dictionaries(st.text(max_size=8), ANY, max_size=6),
}


def fields_of(kind: str) -> st.SearchStrategy[tuple[Any, ...]]:
    vectors = {"state": {"state": VECTOR}, "control": {"u": INPUTS},
               "observation": {"state": VECTOR, "u": INPUTS}}.get(kind, {})
    return st.tuples(*(vectors[name] if name in vectors else FIELD[types]
                       for name, types in msg.SCHEMA[kind]))


def same_outcome(data: bytes) -> None:
    """Both codecs take `data` as the same message, or refuse it with the same kind (and, but
    for `malformed`, whose detail now names the rule, the same detail and value)."""
    try:
        expected = msgpack_decode(data)
    except msg.MessageError as error:
        with pytest.raises(msg.MessageError) as info:
            msg.decode(data)
        assert info.value.kind == error.kind, (info.value, error)
        if error.kind != "malformed":
            assert info.value.detail == error.detail
            assert repr(info.value.value) == repr(error.value)
        return
    got = msg.decode(data)
    assert got.kind == expected.kind
    assert repr(got.fields) == repr(expected.fields)  # repr: NaN == NaN, 1 != 1.0
    assert [type(v) for v in got.fields.values()] == [type(v) for v in expected.fields.values()]


@settings(max_examples=60, deadline=None)
@given(st.data())
@pytest.mark.parametrize("kind", sorted(msg.SCHEMA))
def test_every_kind_packs_to_msgpacks_bytes_and_decodes_alike(kind: str, data: Any) -> None:
    fields = data.draw(fields_of(kind))
    packed = msg.encode(kind, *fields)
    assert packed == msgpack_encode(kind, *fields)
    same_outcome(packed)


EDGES: list[tuple[str, tuple[Any, ...]]] = [
    ("state", (BIG, SMALLEST, [0.0, -0.0, 1e308, -5e-324, 3, -(2**63)], 0)),
    ("state", (0, -1, [math.nan, math.inf, -math.inf], BIG)),
    ("control", (BIG, -1, [-12.5], SMALLEST, 2**32, 2**31 - 1)),
    ("control", (1, 2, [7], 0, 0, 0)),
    ("control", (1, 2, [0.0, -0.0, 1e308, -5e-324, 3, -(2**63), BIG, 2.5], 0, 0, 0)),
    ("control", (1, 2, [1.0, math.nan], 0, 0, 0)),
    ("observation", (1, 2, 0.5, [0.0], [1.0, math.nan, -3], 0, 0, 0, -1, "", 0)),
    ("hello", (msg.PROTOCOL_VERSION, TEXT)),
    ("hello", (1, TEXT)),  # protocol 1's hello still decodes; the plant refuses its version
    ("welcome", (1, {"names": [TEXT, ""], "limits": {"x": [-1.5, 2**40]}, "t0": None,
                     "ok": True, "empty": {}, "list": []})),
    ("gains_set", (2**33, "", [], [])),
    ("gains_reply", (0, False, "x" * 300, ["k"], [1.0, -2], [])),
    ("observing", (2000, "r" * 40, {})),
    ("clear", ()),
]


@pytest.mark.parametrize(("kind", "fields"), EDGES, ids=[f"{k}-{i}" for i, (k, _) in
                                                       enumerate(EDGES)])
def test_edge_values_pack_to_msgpacks_bytes_and_decode_alike(kind: str,
                                                            fields: tuple[Any, ...]) -> None:
    packed = msg.encode(kind, *fields)
    assert packed == msgpack_encode(kind, *fields)
    same_outcome(packed)


@settings(max_examples=200, deadline=None)
@given(st.integers(SMALLEST, BIG), st.integers(SMALLEST, BIG), VECTOR, st.integers(0, BIG),
       INPUTS)
def test_hot_path_packers_write_msgpacks_bytes(seq: int, t_ns: int, state: list[float],
                                               flags: int, u: list[float]) -> None:
    assert msg.pack_state(seq, t_ns, state, flags) == msgpack_pack_state(seq, t_ns, state, flags)
    assert (msg.pack_control(seq, flags, u, t_ns, 0, 5)
            == msgpack_pack_control(seq, flags, u, t_ns, 0, 5))
    assert msg.pack_observation(seq, t_ns, 1.5, state, u, 0, 1, 2, -1, TEXT, 0) == (
        msgpack_encode("observation", seq, t_ns, 1.5, state, u, 0, 1, 2, -1, TEXT, 0))


def test_numpy_float64_packs_as_msgpack_packs_it_and_float32_is_refused_alike() -> None:
    assert msg.pack_control(1, 2, [np.float64(1.5), np.float64(-2.0)], 0, 0, 0) == (
        msgpack_pack_control(1, 2, [np.float64(1.5), np.float64(-2.0)], 0, 0, 0))
    for codec in (msgpack_encode, msg.encode):
        with pytest.raises(TypeError):
            codec("control", 1, 2, [np.float32(1.5)], 0, 0, 0)
        with pytest.raises(OverflowError):
            codec("heartbeat", 2**64)


def packed(obj: object) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def nested(depth: int) -> bytes:
    """A gains_set whose values hold one list in another, `depth` deep."""
    head = b"\x95" + b"".join(packed(f) for f in ("gains_set", 1, "op", []))
    return head + b"\x91" * depth + b"\x90"


REFUSED = [
    ("int field sent as 1.0", packed(["control", 1.0, 2, 1.0, 0, 0, 0]), "bad_type"),
    ("float entry sent as bool", packed(["state", 1, 2, [0.0, True], 0]), "bad_type"),
    ("str field sent as bin", packed(["hello", 1, b"controller"]), "malformed"),
    ("bin deep in a description", packed(["welcome", 1, {"a": [{"b": b"x"}]}]), "malformed"),
    ("ext in a gains list", packed(["gains_set", 1, "op", [], [msgpack.ExtType(3, b"x")]]),
     "malformed"),
    ("timestamp in a gains list", packed(["gains_set", 1, "op", [msgpack.Timestamp(1)], []]),
     "malformed"),
    ("str over the limit", packed(["bye", "é" * (msg.MAX_STR_BYTES // 2 + 1)]), "malformed"),
    ("map key over the limit", packed(["welcome", 1, {"k" * (msg.MAX_STR_BYTES + 1): 1}]),
     "malformed"),
    ("array over the limit", packed(["gains_set", 1, "op", [], [0] * (msg.MAX_ARRAY_LEN + 1)]),
     "malformed"),
    ("map over the limit", packed(["welcome", 1, {str(i): 0 for i in range(msg.MAX_MAP_LEN + 1)}]),
     "malformed"),
    ("int map key inside", msgpack.packb(["welcome", 1, {"a": {1: 2}}], use_bin_type=True,
                                         strict_types=False), "malformed"),
    ("nested 2000 deep", nested(2000), "malformed"),
    ("a state vector of 33", packed(["state", 1, 2, [0.0] * 33, 0]), "bad_shape"),
    ("an empty state vector", packed(["observation", 1, 2, 0.5, [], [0.0], 0, 0, 0, -1, "", 0]),
     "bad_shape"),
    ("an empty observed input", packed(["observation", 1, 2, 0.5, [0.0], [], 0, 0, 0, -1, "", 0]),
     "bad_shape"),
    ("an observed input of 9", packed(["observation", 1, 2, 0.5, [0.0], [0.0] * 9, 0, 0, 0, -1,
                                       "", 0]), "bad_shape"),
    ("observation input as one number (protocol 1)",
     packed(["observation", 1, 2, 0.5, [0.0], 0.0, 0, 0, 0, -1, "", 0]), "bad_type"),
    ("NaN input", packed(["control", 1, 2, [math.nan], 0, 0, 0]), "non_finite"),
    ("-inf input", packed(["control", 1, 2, [-math.inf], 0, 0, 0]), "non_finite"),
    ("NaN second input", packed(["control", 1, 2, [0.5, math.nan], 0, 0, 0]), "non_finite"),
    ("control input as one number (protocol 1)", packed(["control", 1, 2, 1.5, 0, 0, 0]),
     "bad_type"),
    ("an input vector of 9", packed(["control", 1, 2, [0.0] * 9, 0, 0, 0]), "bad_shape"),
    ("an empty input vector", packed(["control", 1, 2, [], 0, 0, 0]), "bad_shape"),
    ("a str input entry", packed(["control", 1, 2, [1.0, "x"], 0, 0, 0]), "bad_type"),
    ("one field too many", packed(["heartbeat", 1, 2]), "bad_arity"),
    ("no field", packed(["sync"]), "bad_arity"),
    ("unknown kind", packed(["launch", 1]), "unknown_kind"),
    ("kind not a string", packed([7, 1]), "malformed"),
    ("trailing bytes", packed(["heartbeat", 1]) + b"\x00", "malformed"),
    ("truncated", packed(["heartbeat", 1])[:-1], "malformed"),
    ("bad UTF-8", b"\x92\xa3bye\xa2\xc3\x28", "malformed"),
    ("oversized", packed(["bye", "x" * msg.MAX_MESSAGE_BYTES]), "oversized"),
]


@pytest.mark.parametrize(("name", "data", "kind"), REFUSED, ids=[r[0] for r in REFUSED])
def test_refusals_keep_their_kind(name: str, data: bytes, kind: str) -> None:
    with pytest.raises(msg.MessageError) as info:
        msg.decode(data)
    assert info.value.kind == kind, info.value
    same_outcome(data)


def test_limits_are_inclusive_like_the_unpackers() -> None:
    for data in (packed(["bye", "é" * (msg.MAX_STR_BYTES // 2)]),
                 packed(["gains_set", 1, "op", [], [0] * msg.MAX_ARRAY_LEN]),
                 packed(["welcome", 1, {str(i): 0 for i in range(msg.MAX_MAP_LEN)}]),
                 packed(["state", 1, 2, [0.0] * msg.MAX_STATE_DIM, 0]),
                 packed(["control", 1, 2, [0.0] * msg.MAX_INPUT_DIM, 0, 0, 0]), nested(500)):
        msg.decode(data)
        same_outcome(data)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_get_the_same_outcome(data: bytes) -> None:
    same_outcome(data)


@settings(max_examples=300, deadline=None)
@given(ANY, st.sampled_from(sorted(msg.SCHEMA)), st.integers(0, 12))
def test_random_structures_get_the_same_outcome(obj: Any, kind: str, where: int) -> None:
    arity = len(msg.SCHEMA[kind])
    for candidate in (obj, [kind, *([obj] * arity)], [kind, *range(where)],
                      ["control", 1, 2, obj, 0, 0, 0], ["control", 1, 2, [obj], 0, 0, 0],
                      ["state", 1, 2, obj, 0]):
        same_outcome(packed(candidate))
