"""Build and run the C reference codec's test driver; speak its line format from Python.

The driver (firmware_protocol/c/hilproto_driver.c documents the format) is compiled once
per test session with the system compiler into a temporary directory. The formatting
functions here turn Python messages and decoder events into the same lines, so that the
two codecs can be compared line for line.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest

import firmware_protocol
from firmware_protocol import (
    MAX_FRAME_BYTES,
    Capabilities,
    Control,
    Decoder,
    DecoderStatistics,
    DuplicateFrame,
    Event,
    Fault,
    Frame,
    FrameRejected,
    Heartbeat,
    Hello,
    Message,
    SequenceGap,
    SequenceReset,
    State,
    StateRaw,
)

C_DIR = Path(firmware_protocol.__file__).with_name("c")
CFLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2")
STATS_FIELDS = (
    "bytes_received", "frames_ok", "too_long_errors", "cobs_errors", "length_errors",
    "crc_errors", "version_errors", "type_errors", "value_errors", "sequence_gaps",
    "frames_missed", "duplicates", "sequence_resets",
)


@functools.cache
def driver_path() -> Path:
    """Compile hilproto.c + hilproto_driver.c once; fail (never skip) without a compiler."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.fail("no C compiler: the C reference codec tests need `cc` or `gcc` on PATH "
                    "(e.g. `apt-get install gcc`)")
    build = Path(tempfile.mkdtemp(prefix="hilproto-"))
    atexit.register(shutil.rmtree, build, ignore_errors=True)
    program = build / "hilproto_driver"
    command = [compiler, *CFLAGS, f"-I{C_DIR}", str(C_DIR / "hilproto.c"),
               str(C_DIR / "hilproto_driver.c"), "-o", str(program)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.fail(f"compiling the C codec failed:\n{' '.join(command)}\n{result.stderr}")
    return program


def run_driver(commands: list[str]) -> list[list[str]]:
    """Run driver commands; the output lines of each, in order."""
    result = subprocess.run(
        [str(driver_path())], input="".join(f"{c}\n" for c in commands),
        capture_output=True, text=True, check=True, timeout=120,
    )
    outputs: list[list[str]] = [[]]
    for line in result.stdout.splitlines():
        if line == "end":
            outputs.append([])
        else:
            outputs[-1].append(line)
    assert outputs.pop() == [], "driver output does not end with 'end'"
    assert len(outputs) == len(commands)
    return outputs


def f32_hex(value: float) -> str:
    """The binary32 bit pattern of `value` as 8 hex digits."""
    return struct.pack(">f", value).hex()


def message_fields(message: Message) -> list[str]:
    """The payload fields of `message` in driver order."""
    match message:
        case Capabilities():
            return [str(v) for v in (
                message.rig_id, *message.firmware_version, message.state_layout.value,
                message.state_encoding.value, message.control_unit.value,
                message.state_rate_hz, message.watchdog_ms, message.angle_counts_per_rev,
                message.cart_counts_per_m, message.nonce, message.input_count,
            )] + [f32_hex(v) for pair in message.input_limits for v in pair]
        case Hello():
            return [str(message.nonce)]
        case State():
            values = [f32_hex(v) for v in message.values]
            return [str(message.timestamp_us), str(len(values)), *values]
        case StateRaw():
            counts = [str(c) for c in message.counts]
            return [str(message.timestamp_us), str(len(counts)), *counts]
        case Control():
            return [str(message.state_seq), str(len(message.commands)),
                    *(f32_hex(c) for c in message.commands)]
        case Heartbeat():
            return [str(message.timestamp_us)]
        case Fault():
            return [str(int(message.code)), str(message.detail)]
    return []


def frame_line(word: str, frame: Frame) -> str:
    """`word TYPE SEQ FLAGS FIELDS...` for a frame."""
    return " ".join([word, frame.message.TYPE.name, str(frame.seq), str(int(frame.flags)),
                     *message_fields(frame.message)])


def encode_command(frame: Frame) -> str:
    """The driver command that encodes `frame`."""
    return frame_line("encode", frame)


def event_lines(event: Event) -> list[str]:
    match event:
        case Frame():
            return [frame_line("frame", event)]
        case DuplicateFrame():
            return [frame_line("duplicate", event.frame)]
        case SequenceGap():
            return [f"gap {event.expected} {event.received}"]
        case SequenceReset():
            return [f"reset {event.expected} {event.received}"]
        case FrameRejected():
            return [f"reject {event.reason.value}"]
    raise AssertionError(f"unexpected event {event!r}")


def stats_line(stats: DecoderStatistics) -> str:
    return " ".join(["stats", *(str(getattr(stats, name)) for name in STATS_FIELDS)])


def python_decode_lines(data: bytes) -> list[str]:
    """What the Python decoder makes of `data`, in the driver's `decode` output format."""
    decoder = Decoder(max_buffer_bytes=max(len(data), MAX_FRAME_BYTES))
    decoder.feed(data)
    lines = [line for event in decoder for line in event_lines(event)]
    return [*lines, stats_line(decoder.statistics())]
