"""One frame at a time: the shared vectors drive encode and decode; misuse is ours to raise.

Every case of firmware_protocol/vectors.json is encoded and compared byte for byte, decoded
with `decode`, and fed to the streaming `Decoder` three ways (h11's test_io habit): whole,
one byte at a time, and followed by the start of another frame, which must stay buffered.
"""

from __future__ import annotations

import math
import struct
from dataclasses import replace

import pytest
from fp_vectors import FRAMES, REJECTS

from firmware_protocol import (
    NEED_DATA,
    Capabilities,
    Clear,
    Control,
    ControlUnit,
    Decoder,
    Encoder,
    Estop,
    Fault,
    FaultCode,
    Flags,
    Frame,
    FrameRejected,
    Heartbeat,
    Hello,
    LocalProtocolError,
    RemoteProtocolError,
    State,
    StateEncoding,
    StateLayout,
    StateRaw,
    decode,
    encode,
    frame_bytes,
)

VECTOR_IDS = [v.name for v in FRAMES]


@pytest.mark.parametrize("vector", FRAMES, ids=VECTOR_IDS)
def test_encode_reproduces_the_vector_bytes(vector):
    assert encode(vector.message, seq=vector.seq, flags=vector.flags).hex() == vector.hex


@pytest.mark.parametrize("vector", FRAMES, ids=VECTOR_IDS)
def test_decode_returns_the_vector_fields(vector):
    assert decode(vector.wire) == vector.frame


def decode_stream(decoder: Decoder, chunks: list[bytes]) -> list:
    events = []
    for chunk in chunks:
        decoder.feed(chunk)
        events.extend(decoder)
    return events


@pytest.mark.parametrize("vector", FRAMES, ids=VECTOR_IDS)
@pytest.mark.parametrize("way", ["whole", "byte-by-byte", "with-trailing-bytes"])
def test_decoder_yields_the_vector_fed_three_ways(vector, way):
    wire = vector.wire
    decoder = Decoder()
    if way == "whole":
        events = decode_stream(decoder, [wire])
    elif way == "byte-by-byte":
        events = []
        for index in range(len(wire)):
            decoder.feed(wire[index : index + 1])
            events.extend(decoder)
            if index < len(wire) - 1:
                assert events == [], "a frame must not be reported before its delimiter"
    else:
        following = encode(Heartbeat(timestamp_us=1), seq=(vector.seq + 1) % 65536)
        events = decode_stream(decoder, [wire + following[:-1]])
        assert decoder.statistics().buffered_bytes == len(following) - 1
        assert decoder.next_event() is NEED_DATA
        decoder.feed(following[-1:])
        assert decoder.next_event() == decode(following)
        assert decoder.next_event() is NEED_DATA
    assert events == [vector.frame]
    assert decoder.statistics().buffered_bytes == 0


@pytest.mark.parametrize("vector", REJECTS, ids=[v.name for v in REJECTS])
def test_reject_vectors_are_rejected_for_their_reason_only(vector):
    decoder = Decoder()
    decoder.feed(vector.wire)
    [event] = list(decoder)
    assert isinstance(event, FrameRejected)
    assert event.reason == vector.reason
    stats = decoder.statistics()
    assert getattr(stats, f"{vector.reason.value}_errors") == stats.rejected == 1
    with pytest.raises(RemoteProtocolError) as raised:
        decode(vector.wire)
    assert raised.value.reason == vector.reason


def crc32_reference(data: bytes) -> int:
    """CRC-32/ISO-HDLC bit by bit (reflected form), independent of zlib."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0xEDB88320 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def cobs_reference(data: bytes) -> bytes:
    """COBS for bodies below 254 bytes, written from the definition."""
    out = b""
    for chunk in data.split(b"\x00"):
        out += bytes([len(chunk) + 1]) + chunk
    return out


@pytest.mark.parametrize(
    ("message", "payload"),
    [
        (Control(commands=(12.5,), state_seq=7), struct.pack("<HBf", 7, 1, 12.5)),
        (Control(commands=(19.5, -3.5), state_seq=300), struct.pack("<HB2f", 300, 2, 19.5,
                                                                     -3.5)),
        (Hello(nonce=0xDEADBEEF), struct.pack("<I", 0xDEADBEEF)),
        (State(timestamp_us=1234567, values=(0.25, -0.5)), struct.pack("<IB2f", 1234567, 2,
                                                                        0.25, -0.5)),
        (StateRaw(timestamp_us=5, counts=(-1, 2)), struct.pack("<IB2i", 5, 2, -1, 2)),
        (Fault(code=FaultCode.LIMIT_SWITCH, detail=1), bytes([4, 1, 0])),
        (Estop(), b""),
    ],
    ids=["control", "control_two_inputs", "hello", "state", "state_raw", "fault", "estop"],
)
def test_frames_match_the_layout_written_from_protocol_md(message, payload):
    body = bytes([2, message.TYPE, 0x34, 0x12, 0x01]) + payload
    expected = cobs_reference(body + crc32_reference(body).to_bytes(4, "little")) + b"\x00"
    assert encode(message, seq=0x1234, flags=Flags.MOTOR_ENABLED) == expected


CAPABILITIES = Capabilities(
    rig_id=7, firmware_version=(1, 0, 0), state_layout=StateLayout.DOUBLE_INVERTED_PENDULUM,
    state_encoding=StateEncoding.FLOAT32_SI, control_unit=ControlUnit.FORCE_N,
    state_rate_hz=1000, watchdog_ms=50, angle_counts_per_rev=4096, cart_counts_per_m=20000,
    nonce=0x12345678, input_limits=((-150.0, 150.0),),
)


def test_capabilities_match_the_layout_written_from_protocol_md():
    two = replace(CAPABILITIES, input_limits=((0.0, 40.0), (-24.0, 24.0)))
    payload = struct.pack("<I3BBBBHHIIIB4f", 7, 1, 0, 0, 2, 0, 0, 1000, 50, 4096, 20000,
                          0x12345678, 2, 0.0, 40.0, -24.0, 24.0)
    body = bytes([2, 0x02, 0, 0, 0]) + payload
    expected = cobs_reference(body + crc32_reference(body).to_bytes(4, "little")) + b"\x00"
    assert encode(two, seq=0) == expected
    assert two.input_count == 2


@pytest.mark.parametrize(
    ("message", "size"),
    [
        (Hello(), 15), (Estop(), 11), (Clear(), 11), (Fault(code=2), 14),
        (Heartbeat(timestamp_us=0), 15), (Control(commands=(0.0,), state_seq=0), 18),
        (Control(commands=(0.0,) * 2, state_seq=0), 22),
        (Control(commands=(0.0,) * 4, state_seq=0), 30),
        (Control(commands=(0.0,) * 8, state_seq=0), 46),
        (StateRaw(timestamp_us=0, counts=(0, 0)), 24),
        (StateRaw(timestamp_us=0, counts=(0, 0, 0)), 28),
        (State(timestamp_us=0, values=(0.0,) * 4), 32),
        (State(timestamp_us=0, values=(0.0,) * 6), 40),
        (State(timestamp_us=0, values=(0.0,) * 8), 48),
        (CAPABILITIES, 46),
        (replace(CAPABILITIES, input_limits=((-1.0, 1.0),) * 2), 54),
        (replace(CAPABILITIES, input_limits=((-1.0, 1.0),) * 8), 102),
    ],
    ids=lambda p: type(p).__name__ if not isinstance(p, int) else str(p),
)
def test_frame_sizes_are_those_of_the_spec_whatever_the_values(message, size):
    assert frame_bytes(message) == size
    assert len(encode(message, seq=65535, flags=0xFF)) == size


def test_state_values_are_stored_as_float32_so_a_message_equals_its_decoded_copy():
    message = State(timestamp_us=0, values=[0.1, 1 / 3])
    assert message.values == (struct.unpack("<f", struct.pack("<f", 0.1))[0],
                              struct.unpack("<f", struct.pack("<f", 1 / 3))[0])
    assert decode(encode(message, seq=0)).message == message


@pytest.mark.parametrize(
    "make",
    [
        lambda: Control(commands=(math.nan,), state_seq=0),
        lambda: Control(commands=(1.0, math.inf), state_seq=0),
        lambda: Control(commands=(1e39,), state_seq=0),
        lambda: Control(commands=("1.0x",), state_seq=0),
        lambda: Control(commands=(), state_seq=0),
        lambda: Control(commands=(0.0,) * 9, state_seq=0),
        lambda: Control(commands=1.0, state_seq=0),
        lambda: Control(commands=(1.0,), state_seq=65536),
        lambda: Control(commands=(1.0,), state_seq=-1),
        lambda: Control(commands=(1.0,), state_seq=1.5),
        lambda: Hello(nonce=0),
        lambda: Hello(nonce=2**32),
        lambda: State(timestamp_us=0, values=()),
        lambda: State(timestamp_us=0, values=(0.0,) * 9),
        lambda: State(timestamp_us=2**32, values=(0.0,)),
        lambda: StateRaw(timestamp_us=0, counts=(2**31,)),
        lambda: StateRaw(timestamp_us=0, counts=(-(2**31) - 1,)),
        lambda: StateRaw(timestamp_us=0, counts=("7",)),
        lambda: Heartbeat(timestamp_us=-1),
        lambda: Fault(code=256),
        lambda: Fault(code=1, detail=65536),
        lambda: replace(CAPABILITIES, state_layout=3),
        lambda: replace(CAPABILITIES, firmware_version=(1, 2)),
        lambda: replace(CAPABILITIES, watchdog_ms=70000),
        lambda: replace(CAPABILITIES, nonce=-1),
        lambda: replace(CAPABILITIES, input_limits=()),
        lambda: replace(CAPABILITIES, input_limits=((-1.0, 1.0),) * 9),
        lambda: replace(CAPABILITIES, input_limits=((1.0, 1.0),)),
        lambda: replace(CAPABILITIES, input_limits=((-math.inf, 1.0),)),
        lambda: replace(CAPABILITIES, input_limits=((-1.0, 1.0, 2.0),)),
        lambda: replace(CAPABILITIES, input_limits=150.0),
        lambda: encode(Hello(), seq=65536),
        lambda: encode(Hello(), seq=0, flags=256),
        lambda: encode("HELLO", seq=0),
        lambda: Encoder(first_seq=-1),
    ],
)
def test_values_the_wire_cannot_carry_are_our_error(make):
    with pytest.raises(LocalProtocolError):
        make()


def test_errors_name_the_field_and_the_allowed_range():
    with pytest.raises(LocalProtocolError, match=r"CONTROL `state_seq` must be in 0\.\.65535"):
        Control(commands=(0.0,), state_seq=70000)
    with pytest.raises(LocalProtocolError, match=r"CONTROL `commands` must hold 1\.\.8"):
        Control(commands=(0.0,) * 9, state_seq=0)
    with pytest.raises(LocalProtocolError, match=r"`input_limits\[0\]` must have low < high"):
        replace(CAPABILITIES, input_limits=((2.0, 1.0),))


def test_a_hello_without_a_nonce_gets_a_fresh_random_nonzero_one():
    nonces = {Hello().nonce for _ in range(64)}
    assert len(nonces) == 64 and 0 not in nonces


@pytest.mark.parametrize("data", [b"", b"\x01\x01", b"\x00\x00", b"\x01\x00\x01\x00"])
def test_decode_takes_exactly_one_delimited_frame(data):
    with pytest.raises(LocalProtocolError, match="Decoder"):
        decode(data)


def test_encoder_numbers_frames_and_wraps_at_two_to_the_sixteen():
    encoder = Encoder(first_seq=65534)
    seqs = [decode(encoder.encode(Heartbeat(timestamp_us=0))).seq for _ in range(3)]
    assert seqs == [65534, 65535, 0]
    with pytest.raises(LocalProtocolError):
        encoder.encode(Heartbeat(timestamp_us=0), flags=300)
    assert encoder.next_seq == 1


def test_known_fault_codes_become_enum_members_and_rig_specific_ones_stay_ints():
    assert decode(encode(Fault(code=2), seq=0)).message.code is FaultCode.WATCHDOG
    assert decode(encode(Fault(code=0x90), seq=0)).message.code == 0x90


def test_raw_counts_convert_to_si_positions_as_the_spec_states():
    raw = StateRaw(timestamp_us=0, counts=(10000, 1024, -2048))
    x_m, theta1, theta2 = raw.positions_si(CAPABILITIES)
    assert x_m == 0.5
    assert theta1 == pytest.approx(math.pi / 2, rel=1e-15)
    assert theta2 == pytest.approx(-math.pi, rel=1e-15)
    no_scale = replace(CAPABILITIES, cart_counts_per_m=0)
    with pytest.raises(LocalProtocolError):
        raw.positions_si(no_scale)


def test_a_flagged_frame_round_trips_its_flags():
    flags = Flags.FAULT_LATCHED | Flags.ESTOP_LATCHED
    assert decode(encode(Estop(), seq=3, flags=flags)) == Frame(3, flags, Estop())
