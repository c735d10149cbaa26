"""The C reference codec against the shared vectors and against the Python decoder.

The C sources are compiled with the system compiler (cc -std=c99 -Wall -Wextra -Werror
-pedantic) and driven over stdin; see fp_c_driver. Without a compiler these tests fail.
"""

from __future__ import annotations

import random

import pytest
from fp_c_driver import encode_command, frame_line, python_decode_lines, run_driver
from fp_vectors import FRAMES, REJECTS

from firmware_protocol import (
    Capabilities,
    Clear,
    Control,
    Estop,
    Fault,
    Flags,
    Frame,
    Heartbeat,
    Hello,
    Message,
    State,
    StateRaw,
    decode,
    encode,
)


def test_c_encodes_every_vector_to_its_exact_bytes():
    outputs = run_driver([encode_command(v.frame) for v in FRAMES])
    assert {v.name: out for v, out in zip(FRAMES, outputs, strict=True)} == {
        v.name: [v.hex] for v in FRAMES
    }


def test_c_decodes_every_vector_to_the_same_fields():
    outputs = run_driver([f"decode {v.hex}" for v in FRAMES])
    for vector, lines in zip(FRAMES, outputs, strict=True):
        assert lines[:-1] == [frame_line("frame", vector.frame)], vector.name
        assert lines[-1] == python_decode_lines(vector.wire)[-1], vector.name


def test_c_rejects_every_reject_vector_for_its_reason():
    outputs = run_driver([f"decode {v.hex}" for v in REJECTS])
    for vector, lines in zip(REJECTS, outputs, strict=True):
        assert lines[:-1] == [f"reject {vector.reason.value}"], vector.name


def test_a_two_input_control_round_trips_python_to_c_and_back():
    sent = Frame(41, Flags.NONE, Control(commands=(19.62, -3.5), state_seq=40))
    [c_decoded, c_encoded] = run_driver([f"decode {encode(sent.message, seq=41).hex()}",
                                         encode_command(sent)])
    assert c_decoded[0] == frame_line("frame", sent)
    assert decode(bytes.fromhex(c_encoded[0])) == sent
    assert decode(bytes.fromhex(c_encoded[0])).message.commands == (
        pytest.approx(19.62, rel=1e-7), -3.5)


def test_c_refuses_to_encode_what_python_refuses():
    nan, inf = "7fc00000", "ff800000"
    one, minus_one, zero, minus_zero = "3f800000", "bf800000", "00000000", "80000000"
    caps = "1 0 1 1 0 0 2 0 0 1000 50 4096 20000 7"
    commands = [
        f"encode CONTROL 1 0 0 1 {nan}",
        f"encode CONTROL 1 0 0 2 {one} {inf}",
        "encode CONTROL 1 0 0 0",  # count 0
        "encode CONTROL 1 0 0 9 " + " ".join([one] * 9),
        "encode HELLO 1 0 0",  # nonce 0
        f"encode CAPABILITIES {caps} 0",  # no input
        f"encode CAPABILITIES {caps} 9 " + " ".join([minus_one, one] * 9),
        f"encode CAPABILITIES {caps} 1 {one} {one}",  # low == high
        f"encode CAPABILITIES {caps} 1 {one} {minus_one}",  # low > high
        f"encode CAPABILITIES {caps} 1 {minus_zero} {zero}",  # -0 == +0
        f"encode CAPABILITIES {caps} 2 {minus_one} {one} {minus_one} {nan}",
        f"encode CAPABILITIES 1 0 1 1 0 0 3 0 0 1000 50 4096 20000 7 1 {minus_one} {one}",
        f"encode STATE 1 0 0 0 {one}",  # count 0
        "encode STATE 1 0 0 9 " + " ".join([one] * 9),
        f"encode STATE 1 0 0 2 {one} {nan}",
        "encode STATE_RAW 1 0 0 0",
        f"encode CAPABILITIES 1 0 1 1 0 0 2 2 0 1000 50 4096 20000 7 1 {minus_one} {one}",
        f"encode CAPABILITIES 1 0 1 1 0 0 2 0 2 1000 50 4096 20000 7 1 {minus_one} {one}",
        "encode NOSUCHTYPE 1 0",
    ]
    assert run_driver(commands) == [["error"]] * len(commands)


def random_message(rng: random.Random) -> Message:
    """A valid message with random fields (floats from random bit patterns, kept finite)."""

    def f32() -> float:
        return rng.choice([0.0, -0.0, 1.0, rng.uniform(-200, 200), rng.uniform(-1e-3, 1e-3)])

    kind = rng.randrange(9)
    if kind == 0:
        return State(rng.getrandbits(32), [f32() for _ in range(rng.randint(1, 8))])
    if kind == 1:
        return StateRaw(rng.getrandbits(32),
                        [rng.randint(-(2**31), 2**31 - 1) for _ in range(rng.randint(1, 8))])
    if kind == 2:
        return Control([f32() for _ in range(rng.randint(1, 8))], rng.getrandbits(16))
    if kind == 3:
        return Heartbeat(rng.getrandbits(32))
    if kind == 4:
        return Fault(rng.getrandbits(8), rng.getrandbits(16))
    if kind == 5:
        limits = [(low, low + rng.choice([1e-3, 1.0, 300.0]))
                  for low in (rng.uniform(-200, 200) for _ in range(rng.randint(1, 8)))]
        return Capabilities(rng.getrandbits(32), (1, 2, 3), rng.randint(0, 2), rng.randint(0, 1),
                            rng.randint(0, 1), rng.getrandbits(16), rng.getrandbits(16),
                            rng.getrandbits(32), rng.getrandbits(32), rng.getrandbits(32),
                            limits)
    return rng.choice([Hello(rng.randint(1, 2**32 - 1)), Estop(), Clear(), Estop()])


def corrupted_stream(rng: random.Random) -> bytes:
    """Frames with lost, repeated and out-of-order seqs, then damaged in seeded ways."""
    seq = rng.getrandbits(16)
    frames = []
    for _ in range(rng.randint(1, 12)):
        seq = (seq + rng.choice([1, 1, 1, 1, 0, 2, 5, -3, 40000])) % 65536
        frames.append(bytearray(encode(random_message(rng), seq=seq, flags=rng.getrandbits(3))))
    for frame in frames:
        damage = rng.randrange(8)
        if damage == 0:  # 1-4 random bit flips, delimiter included
            for _ in range(rng.randint(1, 4)):
                frame[rng.randrange(len(frame))] ^= 1 << rng.randrange(8)
        elif damage == 1:  # truncated: the tail and maybe the delimiter are lost
            del frame[rng.randrange(1, len(frame)) :]
        elif damage == 2:  # garbage before the frame, zeros included
            frame[0:0] = rng.randbytes(rng.randint(1, 30))
        elif damage == 3:  # a long run without a delimiter
            frame[0:0] = bytes(rng.randint(1, 255) for _ in range(rng.randint(40, 120)))
        elif damage == 4:  # a byte lost inside
            del frame[rng.randrange(len(frame))]
    stream = b"".join(frames)
    if rng.random() < 0.3:
        stream += rng.choice(REJECTS).wire
    return stream


def test_python_and_c_decoders_agree_on_a_seeded_corpus_of_corrupted_streams():
    rng = random.Random(0x5EED)
    streams = [corrupted_stream(rng) for _ in range(400)]
    c_outputs = run_driver([f"decode {s.hex()}" for s in streams])
    kinds: set[str] = set()
    for stream, c_lines in zip(streams, c_outputs, strict=True):
        python_lines = python_decode_lines(stream)
        assert c_lines == python_lines, stream.hex()
        kinds.update(line.split()[0] + (line.split()[1] if line.startswith("reject") else "")
                     for line in python_lines)
    # The corpus must exercise every outcome, or agreement would prove little.
    assert kinds >= {"frame", "gap", "reset", "duplicate", "stats", "rejecttoo_long",
                     "rejectcobs", "rejectlength", "rejectcrc", "rejectversion",
                     "rejecttype", "rejectvalue"}
