"""The streaming decoder: bytes in, events out, memory bounded, resynchronising.

Sans-I/O like h11: `feed()` buffers bytes, `next_event()` returns the next event or
`NEED_DATA`, iterating drains it. It splits the stream at 0x00 delimiters, checks each frame
(`codec.parse_frame`), tracks the peer's sequence numbers and counts everything it rejects.

Two caps keep memory bounded. A frame longer than MAX_ENCODED_BYTES is the peer's fault:
it is reported as `FrameRejected(TOO_LONG)` and the decoder discards bytes up to the next
delimiter, where it resynchronises. Feeding more than `max_buffer_bytes` without draining
is ours: `feed()` raises `BufferFullError` and keeps nothing of that call's data.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from firmware_protocol.codec import MAX_ENCODED_BYTES, MAX_FRAME_BYTES, SEQ_MODULUS, parse_frame
from firmware_protocol.errors import BufferFullError, RejectReason, RemoteProtocolError
from firmware_protocol.events import (
    NEED_DATA,
    DuplicateFrame,
    Event,
    Frame,
    FrameRejected,
    NeedData,
    SequenceGap,
    SequenceReset,
)
from firmware_protocol.messages import MessageType

DEFAULT_MAX_BUFFER_BYTES = 65536
_ANCHORS = (MessageType.HELLO, MessageType.CAPABILITIES)  # start a new sequence


@dataclass(frozen=True)
class DecoderStatistics:
    """Counters of a `Decoder` since it was made; rejections by `RejectReason`."""

    bytes_received: int
    buffered_bytes: int  # fed but not yet consumed, including a partial frame
    frames_ok: int  # delivered as `Frame`
    too_long_errors: int
    cobs_errors: int
    length_errors: int
    crc_errors: int
    version_errors: int
    type_errors: int
    value_errors: int
    sequence_gaps: int
    frames_missed: int  # sum of the gaps
    duplicates: int
    sequence_resets: int

    @property
    def rejected(self) -> int:
        """Frames rejected for any reason."""
        return sum(getattr(self, f"{reason.value}_errors") for reason in RejectReason)


class Decoder:
    """Turns a byte stream from the peer into `Event`s. One per direction of one link."""

    def __init__(self, *, max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES) -> None:
        if not isinstance(max_buffer_bytes, int) or max_buffer_bytes < MAX_FRAME_BYTES:
            raise ValueError(
                f"`max_buffer_bytes` must be an int >= {MAX_FRAME_BYTES} (one whole frame), "
                f"got {max_buffer_bytes!r}"
            )
        self._max_buffer_bytes = max_buffer_bytes
        self._buffer = bytearray()
        self._start = 0  # bytes of _buffer before this are consumed
        self._skipping = False  # inside an over-long frame: drop to the next delimiter
        self._pending: deque[Event] = deque()  # a Frame behind its SequenceGap/Reset
        self._expected_seq: int | None = None
        self._bytes_received = 0
        self._frames_ok = 0
        self._rejected = dict.fromkeys(RejectReason, 0)
        self._sequence_gaps = 0
        self._frames_missed = 0
        self._duplicates = 0
        self._sequence_resets = 0

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Buffer bytes received from the peer. Feed b"" freely; nothing marks end of stream.

        Raises `BufferFullError` (and buffers none of `data`) if the undrained bytes would
        exceed `max_buffer_bytes`: call `next_event()` until `NEED_DATA` between feeds.
        """
        undrained = len(self._buffer) - self._start
        if undrained + len(data) > self._max_buffer_bytes:
            raise BufferFullError(
                f"feeding {len(data)} bytes on top of {undrained} undrained would exceed "
                f"max_buffer_bytes={self._max_buffer_bytes}; drain with next_event() "
                "until NEED_DATA, or feed smaller chunks"
            )
        self._buffer += data
        self._bytes_received += len(data)

    def next_event(self) -> Event | NeedData:
        """The next event, or `NEED_DATA` once everything fed so far is consumed."""
        if self._pending:
            return self._pending.popleft()
        buffer = self._buffer
        while True:
            end = buffer.find(0, self._start)
            if self._skipping:
                if end < 0:
                    self._start = len(buffer)
                    break
                self._start = end + 1
                self._skipping = False
                continue
            stop = end if end >= 0 else len(buffer)
            if stop - self._start > MAX_ENCODED_BYTES:
                return self._too_long(end)
            if end < 0:
                break
            encoded = bytes(buffer[self._start : end])
            self._start = end + 1
            if encoded:  # consecutive delimiters are idle fill, not frames
                return self._check(encoded)
        del buffer[: self._start]
        self._start = 0
        return NEED_DATA

    def __iter__(self) -> Iterator[Event]:
        """Drain: yield events until `NEED_DATA`."""
        while (event := self.next_event()) is not NEED_DATA:
            yield event

    def statistics(self) -> DecoderStatistics:
        """A frozen snapshot of the counters. `bytes_received` counts what was fed; the
        others count what `next_event()` has consumed so far."""
        return DecoderStatistics(
            bytes_received=self._bytes_received,
            buffered_bytes=len(self._buffer) - self._start,
            frames_ok=self._frames_ok,
            **{f"{reason.value}_errors": count for reason, count in self._rejected.items()},
            sequence_gaps=self._sequence_gaps,
            frames_missed=self._frames_missed,
            duplicates=self._duplicates,
            sequence_resets=self._sequence_resets,
        )

    def _too_long(self, end: int) -> FrameRejected:
        data = bytes(self._buffer[self._start : self._start + MAX_ENCODED_BYTES])
        if end < 0:
            self._start = len(self._buffer)
            self._skipping = True
        else:
            self._start = end + 1
        self._rejected[RejectReason.TOO_LONG] += 1
        return FrameRejected(
            RejectReason.TOO_LONG,
            f"more than {MAX_ENCODED_BYTES} bytes without a delimiter; "
            "discarding up to the next 0x00",
            data,
        )

    def _check(self, encoded: bytes) -> Event:
        try:
            frame = parse_frame(encoded)
        except RemoteProtocolError as error:
            self._rejected[error.reason] += 1
            return FrameRejected(error.reason, error.detail, encoded, error.peer_version,
                                 error.type_code)
        return self._sequence(frame)

    def _sequence(self, frame: Frame) -> Event:
        """Sequence rules of PROTOCOL.md: gaps and resets are reported before the frame,
        duplicates instead of it (except ESTOP, which is always delivered)."""
        seq, kind = frame.seq, frame.message.TYPE
        expected = self._expected_seq
        if expected is None or kind in _ANCHORS:
            self._expected_seq = (seq + 1) % SEQ_MODULUS
            self._frames_ok += 1
            return frame
        ahead = (seq - expected) % SEQ_MODULUS
        if ahead == SEQ_MODULUS - 1:  # the seq of the previous frame again
            self._duplicates += 1
            if kind != MessageType.ESTOP:
                return DuplicateFrame(frame)
            self._frames_ok += 1
            return frame
        self._expected_seq = (seq + 1) % SEQ_MODULUS
        self._frames_ok += 1
        if ahead == 0:
            return frame
        self._pending.append(frame)
        if ahead < SEQ_MODULUS // 2:
            self._sequence_gaps += 1
            self._frames_missed += ahead
            return SequenceGap(expected, seq)
        self._sequence_resets += 1
        return SequenceReset(expected, seq)
