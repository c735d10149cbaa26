"""The streaming decoder: caps, resynchronisation, sequence tracking, statistics."""

from __future__ import annotations

import dataclasses

import pytest
from fp_vectors import REJECTS

from firmware_protocol import (
    MAX_ENCODED_BYTES,
    NEED_DATA,
    BufferFullError,
    Capabilities,
    ControlUnit,
    Decoder,
    DuplicateFrame,
    Estop,
    Frame,
    FrameRejected,
    Heartbeat,
    Hello,
    RejectReason,
    SequenceGap,
    SequenceReset,
    StateEncoding,
    StateLayout,
    encode,
)


def beat(seq: int) -> bytes:
    return encode(Heartbeat(timestamp_us=seq), seq=seq)


def frame(seq: int) -> Frame:
    return Frame(seq, 0, Heartbeat(timestamp_us=seq))


def events_of(*chunks: bytes, decoder: Decoder | None = None) -> list:
    decoder = Decoder() if decoder is None else decoder
    events = []
    for chunk in chunks:
        decoder.feed(chunk)
        events.extend(decoder)
    return events


def test_next_event_says_need_data_until_a_delimiter_arrives():
    decoder = Decoder()
    assert decoder.next_event() is NEED_DATA
    decoder.feed(beat(1)[:-1])
    assert decoder.next_event() is NEED_DATA
    decoder.feed(bytearray(b"\x00"))
    assert decoder.next_event() == frame(1)
    assert decoder.next_event() is NEED_DATA


def test_consecutive_delimiters_are_idle_fill_not_errors():
    decoder = Decoder()
    assert events_of(b"\x00\x00\x00", beat(1), memoryview(b"\x00\x00"), decoder=decoder) == [
        frame(1)
    ]
    assert decoder.statistics().rejected == 0


def test_over_long_garbage_is_reported_once_discarded_and_resynced_at_the_next_delimiter():
    decoder = Decoder()
    events = events_of(b"\x01" * 1000, b"\x02" * 10, decoder=decoder)
    assert [type(e) for e in events] == [FrameRejected]
    assert events[0].reason is RejectReason.TOO_LONG
    assert len(events[0].data) == MAX_ENCODED_BYTES
    assert decoder.statistics().buffered_bytes == 0, "skipped bytes must not be kept"
    assert events_of(b"\x03\x00" + beat(2), decoder=decoder) == [frame(2)]
    stats = decoder.statistics()
    assert (stats.too_long_errors, stats.rejected) == (1, 1)
    assert stats.bytes_received == 1000 + 10 + 2 + len(beat(2))


def test_the_cap_is_the_largest_valid_frame():
    biggest = Capabilities(
        rig_id=1, firmware_version=(2, 0, 0), state_layout=StateLayout.DECLARED,
        state_encoding=StateEncoding.FLOAT32_SI, control_unit=ControlUnit.PHYSICAL,
        state_rate_hz=500, watchdog_ms=50, angle_counts_per_rev=0, cart_counts_per_m=0,
        nonce=1, input_limits=((-1.0, 1.0),) * 8)
    largest = encode(biggest, seq=0)
    assert len(largest) - 1 == MAX_ENCODED_BYTES
    assert events_of(largest) == [Frame(0, 0, biggest)]
    [rejected] = events_of(b"\x01" * (MAX_ENCODED_BYTES + 1) + b"\x00")
    assert rejected.reason is RejectReason.TOO_LONG
    [rejected] = events_of(b"\x01" * MAX_ENCODED_BYTES + b"\x00")
    assert rejected.reason is RejectReason.CRC  # 100 zero bytes: checked, not cut off


def test_feeding_past_max_buffer_bytes_raises_our_error_and_keeps_none_of_that_call():
    decoder = Decoder(max_buffer_bytes=150)
    decoder.feed(beat(1) * 8)  # 120 bytes, not drained
    with pytest.raises(BufferFullError, match="max_buffer_bytes=150"):
        decoder.feed(beat(2) * 3)
    assert decoder.statistics().bytes_received == 120
    assert len(list(decoder)) == 8  # one frame and seven duplicates
    decoder.feed(beat(2) * 3)
    assert list(decoder) == [frame(2), DuplicateFrame(frame(2)), DuplicateFrame(frame(2))]


def test_max_buffer_bytes_must_hold_a_whole_frame():
    with pytest.raises(ValueError, match="max_buffer_bytes"):
        Decoder(max_buffer_bytes=MAX_ENCODED_BYTES)


def test_a_gap_is_reported_before_the_frame_that_reveals_it():
    decoder = Decoder()
    events = events_of(beat(5), beat(6), beat(9), beat(10), decoder=decoder)
    assert events == [frame(5), frame(6), SequenceGap(7, 9), frame(9), frame(10)]
    assert events[2].missed == 2
    stats = decoder.statistics()
    assert (stats.frames_ok, stats.sequence_gaps, stats.frames_missed) == (4, 1, 2)


def test_a_repeated_seq_is_dropped_as_a_duplicate():
    decoder = Decoder()
    assert events_of(beat(5), beat(5), beat(6), decoder=decoder) == [
        frame(5), DuplicateFrame(frame(5)), frame(6)
    ]
    stats = decoder.statistics()
    assert (stats.frames_ok, stats.duplicates) == (2, 1)


def test_an_estop_is_delivered_even_when_it_repeats_the_seq():
    decoder = Decoder()
    estop = encode(Estop(), seq=5)
    assert events_of(estop, estop, decoder=decoder) == [Frame(5, 0, Estop())] * 2
    assert decoder.statistics().duplicates == 1


def test_a_backwards_seq_re_anchors_and_is_counted_as_a_reset():
    decoder = Decoder()
    events = events_of(beat(100), beat(50), beat(51), decoder=decoder)
    assert events == [frame(100), SequenceReset(101, 50), frame(50), frame(51)]
    assert decoder.statistics().sequence_resets == 1


def test_seq_wraps_from_65535_to_0_without_a_gap():
    assert events_of(beat(65535), beat(0)) == [frame(65535), frame(0)]
    assert events_of(beat(65534), beat(1)) == [frame(65534), SequenceGap(65535, 1), frame(1)]


CAPABILITIES = Capabilities(
    rig_id=1, firmware_version=(1, 0, 0), state_layout=StateLayout.CART_POLE,
    state_encoding=StateEncoding.FLOAT32_SI, control_unit=ControlUnit.FORCE_N,
    state_rate_hz=500, watchdog_ms=50, angle_counts_per_rev=4096, cart_counts_per_m=10000,
    nonce=0, input_limits=((-10.0, 10.0),),
)


@pytest.mark.parametrize("anchor", [Hello(), CAPABILITIES], ids=["hello", "capabilities"])
def test_hello_and_capabilities_start_a_new_sequence(anchor):
    decoder = Decoder()
    events = events_of(beat(500), encode(anchor, seq=0), beat(1), decoder=decoder)
    assert events == [frame(500), Frame(0, 0, anchor), frame(1)]
    stats = decoder.statistics()
    assert stats.sequence_resets == stats.sequence_gaps == 0


def test_the_first_frame_anchors_the_sequence_anywhere():
    assert events_of(beat(40000), beat(40001)) == [frame(40000), frame(40001)]


def test_a_rejected_frame_counts_as_lost_for_the_sequence():
    corrupted = bytearray(beat(6))
    corrupted[3] ^= 0x10
    events = events_of(beat(5), bytes(corrupted), beat(7))
    assert [type(e) for e in events] == [Frame, FrameRejected, SequenceGap, Frame]
    assert events[1].reason is RejectReason.CRC
    assert events[1].data == bytes(corrupted[:-1])


def test_every_reject_reason_has_its_counter():
    decoder = Decoder()
    events = events_of(*(v.wire for v in REJECTS), decoder=decoder)
    assert [e.reason for e in events] == [v.reason for v in REJECTS]
    stats = decoder.statistics()
    for reason in RejectReason:
        assert getattr(stats, f"{reason.value}_errors") == sum(
            v.reason is reason for v in REJECTS
        )
    assert stats.rejected == len(REJECTS)


def test_version_mismatch_says_which_versions_and_carries_the_header():
    v1_capabilities = next(v.wire for v in REJECTS if v.name == "version_1_capabilities")
    [event] = events_of(v1_capabilities)
    assert "version 1" in event.detail and "speaks 2" in event.detail
    assert (event.peer_version, event.type_code) == (1, 0x02)
    [crc_error] = events_of(next(v.wire for v in REJECTS if v.reason is RejectReason.CRC))
    assert (crc_error.peer_version, crc_error.type_code) == (None, None)


def test_statistics_is_a_frozen_snapshot():
    decoder = Decoder()
    before = decoder.statistics()
    events_of(beat(1), decoder=decoder)
    assert before.frames_ok == 0 and decoder.statistics().frames_ok == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        before.frames_ok = 5  # type: ignore[misc]
