"""Wire messages: every kind round-trips; every malformed input is rejected by kind."""

from __future__ import annotations

import math

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hil.link import messages as msg

GOOD = {
    "hello": (msg.PROTOCOL_VERSION, "hil-controller"),
    "welcome": (msg.PROTOCOL_VERSION, {"name": "dip", "state_names": ["x"]}),
    "refuse": ("already_attached", "a controller is already attached"),
    "state": (7, 123_456_789, [0.0, 0.1, -0.05, 0.0, 0.0, 0.0], 0),
    "control": (3, 7, [-12.5], 100, 200, 5_000),
    "heartbeat": (42,),
    "fault": ("overheat", "motor driver over temperature"),
    "clear": (),
    "bye": ("duration",),
    "sync": (123,),
    "sync_reply": (123, 456),
}


@pytest.mark.parametrize("kind", sorted(GOOD))
def test_every_kind_round_trips_through_encode_and_decode(kind: str) -> None:
    m = msg.decode(msg.encode(kind, *GOOD[kind]))
    assert m.kind == kind
    assert tuple(m.fields.values()) == GOOD[kind]


def test_every_schema_kind_has_a_round_trip_case() -> None:
    assert set(GOOD) <= set(msg.SCHEMA)


def test_hot_path_packers_match_the_generic_encoder() -> None:
    assert msg.pack_state(*GOOD["state"]) == msg.encode("state", *GOOD["state"])
    assert msg.pack_control(*GOOD["control"]) == msg.encode("control", *GOOD["control"])
    two = (3, 7, [-12.5, 4.0], 100, 200, 5_000)
    assert msg.pack_control(*two) == msg.encode("control", *two)


def test_a_control_carries_one_number_per_input_up_to_max_input_dim() -> None:
    for n in (1, 2, msg.MAX_INPUT_DIM):
        u = [float(i) - 0.5 for i in range(n)]
        m = msg.decode(msg.pack_control(3, 7, u, 100, 200, 5_000))
        assert m.kind == "control" and m["u"] == u
    assert msg.decode(msg.pack_control(1, 1, [3, -2], 0, 0, 0))["u"] == [3, -2]  # ints too
    observed = msg.decode(msg.pack_observation(1, 2, 0.5, [0.0, 1.0], [1.5, -2.5], 0, 1, 0,
                                               -1, "", 0))
    assert observed["u"] == [1.5, -2.5] and "input" not in observed.fields


def test_encode_refuses_unknown_kind_and_wrong_arity() -> None:
    with pytest.raises(ValueError, match="unknown message kind 'nope'"):
        msg.encode("nope")
    with pytest.raises(ValueError, match="bye takes 1 fields, got 2"):
        msg.encode("bye", "a", "b")


def _packed(obj: object) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


REJECTS = [
    ("malformed", b"\xc1"),  # never-used msgpack byte
    ("malformed", b""),
    ("malformed", _packed({"kind": "state"})),  # a map, not an array
    ("malformed", _packed([])),
    ("malformed", _packed([1, 2, 3])),  # kind is not a string
    ("unknown_kind", _packed(["launch_missiles", 1])),
    ("bad_arity", _packed(["control", 1, 2, [3.0]])),
    ("bad_type", _packed(["control", 1, 2, "12", 0, 0, 0])),
    ("bad_type", _packed(["control", 1, 2, ["12"], 0, 0, 0])),
    ("bad_type", _packed(["control", 1, 2, 1.0, 0, 0, 0])),  # protocol 1's one number
    ("bad_type", _packed(["control", 1, 2, [1.0, True], 0, 0, 0])),
    ("bad_type", _packed(["control", 1.5, 2, [1.0], 0, 0, 0])),
    ("bad_type", _packed(["control", True, 2, [1.0], 0, 0, 0])),  # bool is not an int here
    ("bad_type", _packed(["state", 1, 2, [0.0, "x"], 0])),
    ("malformed", _packed(["hello", 1, b"bytes"])),  # bin is refused by the unpacker
    ("non_finite", _packed(["control", 1, 2, [math.nan], 0, 0, 0])),
    ("non_finite", _packed(["control", 1, 2, [math.inf], 0, 0, 0])),
    ("non_finite", _packed(["control", 1, 2, [1.0, -math.inf], 0, 0, 0])),
    ("bad_shape", _packed(["control", 1, 2, [], 0, 0, 0])),
    ("bad_shape", _packed(["control", 1, 2, [0.0] * (msg.MAX_INPUT_DIM + 1), 0, 0, 0])),
    ("bad_shape", _packed(["observation", 1, 2, 0.5, [0.0], [0.0] * 9, 0, 0, 0, -1, "", 0])),
    ("bad_shape", _packed(["state", 1, 2, [], 0])),
    ("bad_shape", _packed(["state", 1, 2, [0.0] * (msg.MAX_STATE_DIM + 1), 0])),
    ("oversized", b"\x90" * (msg.MAX_MESSAGE_BYTES + 1)),
]


@pytest.mark.parametrize(("kind", "data"), REJECTS)
def test_malformed_input_is_rejected_with_its_kind(kind: str, data: bytes) -> None:
    with pytest.raises(msg.MessageError) as info:
        msg.decode(data)
    assert info.value.kind == kind


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_non_finite_control_carries_its_value_in_the_error(bad: float) -> None:
    with pytest.raises(msg.MessageError) as info:
        msg.decode(_packed(["control", 1, 2, [bad], 0, 0, 0]))
    assert info.value.kind == "non_finite"
    value = info.value.value
    assert isinstance(value, float) and repr(value) == repr(bad)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_a_non_finite_second_input_names_its_index_and_value(bad: float) -> None:
    with pytest.raises(msg.MessageError) as info:
        msg.decode(msg.pack_control(1, 2, [1.5, bad, 3.0], 0, 0, 0))
    assert info.value.kind == "non_finite"
    assert f"control.u[1] is {bad}" in info.value.detail
    assert repr(info.value.value) == repr(bad)


def test_a_control_of_nine_inputs_is_bad_shape_at_decode_naming_the_limit() -> None:
    assert msg.MAX_INPUT_DIM == 8
    with pytest.raises(msg.MessageError) as info:
        msg.decode(msg.pack_control(1, 2, [0.0] * 9, 0, 0, 0))
    assert info.value.kind == "bad_shape"
    assert "control.u has 9 entries (1 .. 8)" in info.value.detail
    with pytest.raises(msg.MessageError) as info:
        msg.decode(msg.pack_control(1, 2, [], 0, 0, 0))
    assert info.value.kind == "bad_shape"
    assert "control.u has 0 entries" in info.value.detail


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=256))
def test_random_bytes_only_ever_raise_message_error(data: bytes) -> None:
    try:
        m = msg.decode(data)
    except msg.MessageError:
        return
    assert m.kind in msg.SCHEMA


SCALARS = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats()
           | st.text(max_size=8))


@settings(max_examples=200, deadline=None)
@given(st.recursive(SCALARS, lambda c: st.lists(c, max_size=8), max_leaves=20))
def test_random_msgpack_structures_never_escape_validation(obj: object) -> None:
    for candidate in (obj, ["control", obj, 1, [1.0], 0, 0, 0],
                      ["control", 1, 1, obj, 0, 0, 0], ["state", 1, 1, obj, 0]):
        try:
            m = msg.decode(_packed(candidate))
        except msg.MessageError:
            continue
        for (name, types), value in zip(msg.SCHEMA[m.kind], m.fields.values(), strict=True):
            assert isinstance(value, types), name
