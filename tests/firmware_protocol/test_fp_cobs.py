"""COBS: the published examples, round trips, and strict rejection of broken blocks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firmware_protocol.cobs import CobsError, cobs_decode, cobs_encode

RUN_254 = bytes(range(1, 255))
# (decoded, encoded) from the examples of Cheshire & Baker's encoding (as tabulated on
# Wikipedia's "Consistent Overhead Byte Stuffing" page), without the trailing delimiter.
EXAMPLES = [
    (b"", b"\x01"),
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x00\x11\x00", b"\x01\x02\x11\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (RUN_254, b"\xff" + RUN_254),
    (b"\x00" + RUN_254, b"\x01\xff" + RUN_254),
    (bytes(range(1, 256)), b"\xff" + RUN_254 + b"\x02\xff"),
    (bytes(range(2, 256)) + b"\x00", b"\xff" + bytes(range(2, 256)) + b"\x01\x01"),
    (bytes(range(3, 256)) + b"\x00\x01", b"\xfe" + bytes(range(3, 256)) + b"\x02\x01"),
]


@pytest.mark.parametrize(("decoded", "encoded"), EXAMPLES)
def test_published_examples_encode_and_decode(decoded, encoded):
    assert cobs_encode(decoded) == encoded
    assert cobs_decode(encoded) == decoded


@given(st.binary(max_size=600))
def test_round_trip_without_zeros_and_with_bounded_overhead(data):
    encoded = cobs_encode(data)
    assert 0 not in encoded
    assert len(data) + 1 <= len(encoded) <= len(data) + 1 + len(data) // 254
    assert cobs_decode(encoded) == data


@pytest.mark.parametrize(
    "encoded",
    [b"\x03\x11", b"\x05\x11\x22\x33", b"\x02\x11\x03", b"\xff" + RUN_254[:-1], b"\x02\x00"],
    ids=["short-block", "short-first-block", "short-last-block", "short-ff-block", "zero"],
)
def test_blocks_running_past_the_end_or_zeros_are_rejected(encoded):
    with pytest.raises(CobsError):
        cobs_decode(encoded)
