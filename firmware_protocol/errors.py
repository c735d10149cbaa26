"""Who broke the protocol: exceptions for our own misuse and for what the peer sent.

Like h11, an error says whose fault it is. `LocalProtocolError` is raised when *this* side
asks for something the protocol cannot carry (a seq outside u16, a NaN command, feeding the
decoder more than its cap without draining it). `RemoteProtocolError` describes bytes the
*peer* sent that are not a valid frame; `decode()` raises it, and the streaming `Decoder`
reports it as a `FrameRejected` event instead, because a serial link must keep going.
"""

from __future__ import annotations

import enum


class RejectReason(enum.Enum):
    """Why a received frame was rejected, in the order the checks run."""

    TOO_LONG = "too_long"  # more than MAX_ENCODED_BYTES before a delimiter
    COBS = "cobs"  # a COBS block runs past the end of the frame
    LENGTH = "length"  # too short for header + CRC, or wrong payload length for the type
    CRC = "crc"  # CRC-32 over header + payload does not match
    VERSION = "version"  # valid CRC, but the peer speaks another protocol version
    TYPE = "type"  # valid CRC and version, unknown message type
    VALUE = "value"  # a field holds a value the protocol does not define (enum, NaN, inf)


class ProtocolError(Exception):
    """Base class of every error this package raises."""


class LocalProtocolError(ProtocolError, ValueError):
    """Our side misused the protocol, e.g. asked to encode a value the wire cannot carry."""


class BufferFullError(LocalProtocolError):
    """`Decoder.feed()` would buffer more than `max_buffer_bytes`; drain events first."""


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes that are not a valid frame; `reason` says which check failed.

    For VERSION, `peer_version` and `type_code` are the header's version and type bytes
    (they mean the same in every version): a CAPABILITIES in another version says which
    version the rig speaks.
    """

    def __init__(self, reason: RejectReason, detail: str, *, peer_version: int | None = None,
                 type_code: int | None = None) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
        self.peer_version = peer_version
        self.type_code = type_code
