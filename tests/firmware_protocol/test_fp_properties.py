"""Properties over arbitrary messages, garbage and chunkings (hypothesis)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_protocol import (
    MAX_ENCODED_BYTES,
    BufferFullError,
    Capabilities,
    Clear,
    Control,
    ControlUnit,
    Decoder,
    DuplicateFrame,
    Estop,
    Fault,
    Flags,
    Frame,
    FrameRejected,
    Heartbeat,
    Hello,
    SequenceGap,
    SequenceReset,
    State,
    StateEncoding,
    StateLayout,
    StateRaw,
    decode,
    encode,
)


def unsigned(bits: int) -> st.SearchStrategy[int]:
    return st.integers(0, (1 << bits) - 1)


float32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
messages = st.one_of(
    st.builds(Hello, nonce=st.integers(1, (1 << 32) - 1)), st.builds(Estop), st.builds(Clear),
    st.builds(
        Capabilities, rig_id=unsigned(32),
        firmware_version=st.tuples(unsigned(8), unsigned(8), unsigned(8)),
        state_layout=st.sampled_from(StateLayout), state_encoding=st.sampled_from(StateEncoding),
        control_unit=st.sampled_from(ControlUnit), state_rate_hz=unsigned(16),
        watchdog_ms=unsigned(16), angle_counts_per_rev=unsigned(32),
        cart_counts_per_m=unsigned(32), nonce=unsigned(32),
        input_limits=st.lists(st.tuples(float32, float32).filter(lambda p: p[0] < p[1]),
                              min_size=1, max_size=8).map(tuple),
    ),
    st.builds(State, timestamp_us=unsigned(32),
              values=st.lists(float32, min_size=1, max_size=8).map(tuple)),
    st.builds(StateRaw, timestamp_us=unsigned(32),
              counts=st.lists(st.integers(-(2**31), 2**31 - 1), min_size=1, max_size=8)
              .map(tuple)),
    st.builds(Control, commands=st.lists(float32, min_size=1, max_size=8).map(tuple),
              state_seq=unsigned(16)),
    st.builds(Heartbeat, timestamp_us=unsigned(32)),
    st.builds(Fault, code=unsigned(8), detail=unsigned(16)),
)
frames = st.builds(Frame, seq=unsigned(16), flags=unsigned(8).map(Flags), message=messages)


@st.composite
def in_order_frames(draw, max_size: int = 4) -> list[Frame]:
    """Frames with consecutive seqs, so that the decoder reports nothing but the frames."""
    start = draw(unsigned(16))
    chosen = draw(st.lists(messages, min_size=1, max_size=max_size))
    return [Frame((start + i) % 65536, Flags.NONE, m) for i, m in enumerate(chosen)]


def wire(frame_list: list[Frame]) -> bytes:
    return b"".join(encode(f.message, seq=f.seq, flags=f.flags) for f in frame_list)


def decode_in_chunks(data: bytes, cuts: list[int]) -> tuple[list, Decoder]:
    decoder = Decoder()
    events = []
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    for start, end in itertools.pairwise(bounds):
        decoder.feed(data[start:end])
        events.extend(decoder)
    return events, decoder


@given(frames)
def test_every_valid_message_round_trips(frame):
    data = encode(frame.message, seq=frame.seq, flags=frame.flags)
    assert decode(data) == frame
    events, _ = decode_in_chunks(data, [])
    assert events == [frame]


@given(st.binary(max_size=300), in_order_frames(), st.lists(st.integers(0, 400), max_size=8))
def test_garbage_then_a_delimiter_never_costs_a_following_frame(garbage, sent, cuts):
    events, _ = decode_in_chunks(garbage + b"\x00" + wire(sent), cuts)
    assert all(isinstance(e, Frame | FrameRejected) for e in events)
    assert [e for e in events if isinstance(e, Frame)] == sent


@given(st.binary(min_size=1, max_size=300), in_order_frames(), st.lists(st.integers(0, 400),
                                                                        max_size=8))
def test_after_garbage_the_decoder_resyncs_by_the_next_frame(garbage, sent, cuts):
    events, _ = decode_in_chunks(garbage + wire(sent), cuts)
    received = [e for e in events if isinstance(e, Frame)]
    lost_first = garbage[-1] != 0  # the garbage's tail is glued to the first frame
    assert received == (sent[1:] if lost_first else sent)


@settings(max_examples=300)
@given(st.binary(max_size=500), st.lists(st.integers(0, 600), max_size=10))
def test_arbitrary_bytes_never_crash_and_every_event_is_counted(data, cuts):
    events, decoder = decode_in_chunks(data, cuts)
    stats = decoder.statistics()
    assert stats.bytes_received == len(data)
    assert stats.buffered_bytes <= MAX_ENCODED_BYTES
    assert stats.rejected == sum(isinstance(e, FrameRejected) for e in events)
    assert stats.frames_ok == sum(isinstance(e, Frame) for e in events)
    assert stats.sequence_gaps == sum(isinstance(e, SequenceGap) for e in events)
    assert stats.sequence_resets == sum(isinstance(e, SequenceReset) for e in events)


@given(st.lists(frames, max_size=5), st.binary(max_size=60), st.lists(st.integers(0, 300),
                                                                      max_size=10))
def test_how_the_stream_is_chunked_never_changes_the_events(sent, garbage, cuts):
    data = garbage + wire(sent) + garbage
    assert decode_in_chunks(data, cuts)[0] == decode_in_chunks(data, [])[0]


@given(st.lists(st.tuples(st.binary(max_size=120), st.booleans()), max_size=30))
def test_the_buffer_never_holds_more_than_its_cap(operations):
    cap = 128
    decoder = Decoder(max_buffer_bytes=cap)
    for data, drain in operations:
        before = decoder.statistics()
        if before.buffered_bytes + len(data) > cap:
            with pytest.raises(BufferFullError):
                decoder.feed(data)
            assert decoder.statistics() == before
        else:
            decoder.feed(data)
        assert decoder.statistics().buffered_bytes <= cap
        if drain:
            list(decoder)
            assert decoder.statistics().buffered_bytes <= MAX_ENCODED_BYTES


@given(unsigned(16), st.lists(st.one_of(st.just(0), st.just(1), st.integers(2, 32768),
                                        st.integers(-32767, -1)), max_size=40))
def test_gaps_duplicates_and_resets_are_counted_as_the_sender_made_them(start, steps):
    """Each step is what the sender did: 0 resent the last seq, k > 0 skipped k - 1 seqs,
    k < 0 went back (a restart)."""
    seqs = [start]
    for step in steps:
        seqs.append((seqs[-1] + step) % 65536)
    data = b"".join(encode(Heartbeat(timestamp_us=0), seq=s) for s in seqs)
    events, decoder = decode_in_chunks(data, [])
    stats = decoder.statistics()
    assert stats.duplicates == steps.count(0)
    assert stats.sequence_gaps == sum(k >= 2 for k in steps)
    assert stats.frames_missed == sum(k - 1 for k in steps if k >= 2)
    assert stats.sequence_resets == sum(k < 0 for k in steps)
    assert stats.frames_ok == 1 + sum(k != 0 for k in steps)
    assert sum(isinstance(e, DuplicateFrame) for e in events) == steps.count(0)
