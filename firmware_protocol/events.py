"""What the streaming `Decoder` reports: frames, and what went wrong on the link.

`Frame` is a valid message. The others describe what the peer sent (h11's
RemoteProtocolError side): `FrameRejected` for bytes that are not a valid frame,
`SequenceGap` / `DuplicateFrame` / `SequenceReset` for valid frames out of sequence.
`NEED_DATA` means: nothing more until you feed more bytes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from firmware_protocol.errors import RejectReason
from firmware_protocol.messages import Flags, Message


class NeedData(enum.Enum):
    """Type of the `NEED_DATA` sentinel."""

    NEED_DATA = "NEED_DATA"


NEED_DATA = NeedData.NEED_DATA


@dataclass(frozen=True)
class Frame:
    """A valid frame: the sender's sequence number, its status flags and the message."""

    seq: int
    flags: Flags
    message: Message


@dataclass(frozen=True)
class FrameRejected:
    """The peer sent bytes that are not a valid frame; they were dropped and counted.

    `data` holds the offending wire bytes without the delimiter (at most MAX_ENCODED_BYTES
    of them for TOO_LONG), for logging. A VERSION reject (a CRC-valid frame of another
    protocol version) carries that frame's `peer_version` and `type_code`.
    """

    reason: RejectReason
    detail: str
    data: bytes
    peer_version: int | None = None
    type_code: int | None = None


@dataclass(frozen=True)
class SequenceGap:
    """Frames were lost: `received` came where `expected` was due. The frame follows."""

    expected: int
    received: int

    @property
    def missed(self) -> int:
        """How many frames were lost (seq numbers wrap at 2**16)."""
        return (self.received - self.expected) & 0xFFFF


@dataclass(frozen=True)
class DuplicateFrame:
    """A valid frame repeated the previous seq and was dropped (an ESTOP never is)."""

    frame: Frame


@dataclass(frozen=True)
class SequenceReset:
    """The seq went backwards (peer restarted without CAPABILITIES/HELLO); re-anchored.

    The frame follows and is delivered.
    """

    expected: int
    received: int


Event = Frame | FrameRejected | SequenceGap | DuplicateFrame | SequenceReset
