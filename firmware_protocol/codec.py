"""One frame at a time: `encode` a message to wire bytes, `decode` wire bytes to a `Frame`.

Wire frame = COBS(header || payload || CRC-32 LE) || 0x00, where header is
version u8, type u8, seq u16 LE, flags u8, and the CRC covers header and payload. Bodies
are at most 100 bytes, so COBS adds exactly one byte and a frame is always
body + 2 bytes long, whatever the values. `Encoder` numbers a stream of frames.
"""

from __future__ import annotations

import struct

from firmware_protocol.cobs import CobsError, cobs_decode, cobs_encode
from firmware_protocol.crc import crc32
from firmware_protocol.errors import LocalProtocolError, RejectReason, RemoteProtocolError
from firmware_protocol.events import Frame
from firmware_protocol.messages import MAX_INPUTS, MESSAGE_CLASSES, Flags, Message

PROTOCOL_VERSION = 2
HEADER = struct.Struct("<BBHB")  # version, type, seq, flags
HEADER_BYTES = HEADER.size  # 5
CRC_BYTES = 4
MAX_PAYLOAD_BYTES = 27 + 8 * MAX_INPUTS  # 91: a CAPABILITIES with 8 inputs' limits
MAX_BODY_BYTES = HEADER_BYTES + MAX_PAYLOAD_BYTES + CRC_BYTES  # 100
MAX_ENCODED_BYTES = MAX_BODY_BYTES + 1  # 101: COBS adds one byte below 254
MAX_FRAME_BYTES = MAX_ENCODED_BYTES + 1  # 102 with the 0x00 delimiter
DELIMITER = b"\x00"
SEQ_MODULUS = 1 << 16


def encode(message: Message, *, seq: int, flags: Flags | int = Flags.NONE) -> bytes:
    """The whole wire frame for `message`, delimiter included.

    Raises `LocalProtocolError` if `message` is not a protocol message or `seq` / `flags`
    do not fit their u16 / u8 fields.
    """
    if type(message) not in MESSAGE_CLASSES.values():
        raise LocalProtocolError(f"`message` must be a protocol message, got {message!r}")
    if not isinstance(seq, int) or not 0 <= seq < SEQ_MODULUS:
        raise LocalProtocolError(f"`seq` must be an int in 0..65535, got {seq!r}")
    if not isinstance(flags, int) or not 0 <= flags <= 0xFF:
        raise LocalProtocolError(f"`flags` must be an int in 0..255, got {flags!r}")
    body = HEADER.pack(PROTOCOL_VERSION, message.TYPE, seq, flags) + message._pack()
    return cobs_encode(body + crc32(body).to_bytes(CRC_BYTES, "little")) + DELIMITER


def frame_bytes(message: Message) -> int:
    """Wire size of `message` in bytes, COBS overhead and delimiter included.

    It depends only on the message type and the number of STATE values, commands or input
    limits, never on the values.
    """
    return len(encode(message, seq=0))


def decode(frame: bytes) -> Frame:
    """Decode exactly one wire frame, ending in its 0x00 delimiter (the inverse of `encode`).

    Raises `RemoteProtocolError` if the frame is invalid, `LocalProtocolError` if `frame`
    is not one delimited frame (use `Decoder` for a byte stream).
    """
    frame = bytes(frame)
    if not frame.endswith(DELIMITER) or frame.count(0) != 1:
        raise LocalProtocolError(
            "`frame` must be one frame ending in its only 0x00; use Decoder for a byte stream"
        )
    return parse_frame(frame[:-1])


def parse_frame(encoded: bytes) -> Frame:
    """Check and decode the bytes between two delimiters; raises `RemoteProtocolError`.

    The checks run in the order of `RejectReason`; the first failure is reported.
    """
    if len(encoded) > MAX_ENCODED_BYTES:
        raise RemoteProtocolError(
            RejectReason.TOO_LONG,
            f"{len(encoded)} bytes without a delimiter; frames are at most {MAX_ENCODED_BYTES}",
        )
    try:
        body = cobs_decode(encoded)
    except CobsError as error:
        raise RemoteProtocolError(RejectReason.COBS, str(error)) from None
    if len(body) < HEADER_BYTES + CRC_BYTES:
        raise RemoteProtocolError(
            RejectReason.LENGTH,
            f"{len(body)} bytes is shorter than header + CRC ({HEADER_BYTES + CRC_BYTES})",
        )
    carried = int.from_bytes(body[-CRC_BYTES:], "little")
    computed = crc32(body[:-CRC_BYTES])
    if carried != computed:
        raise RemoteProtocolError(
            RejectReason.CRC, f"frame carries 0x{carried:08X}, computed 0x{computed:08X}"
        )
    version, type_code, seq, flags = HEADER.unpack_from(body)
    if version != PROTOCOL_VERSION:
        raise RemoteProtocolError(
            RejectReason.VERSION,
            f"peer speaks protocol version {version}, this side speaks {PROTOCOL_VERSION}",
            peer_version=version, type_code=type_code,
        )
    cls = MESSAGE_CLASSES.get(type_code)
    if cls is None:
        raise RemoteProtocolError(RejectReason.TYPE, f"unknown message type 0x{type_code:02X}")
    try:
        message = cls._unpack(body[HEADER_BYTES:-CRC_BYTES])
    except LocalProtocolError as error:
        raise RemoteProtocolError(RejectReason.VALUE, str(error)) from None
    return Frame(seq, Flags(flags), message)


class Encoder:
    """Encodes a stream of frames, numbering them: seq goes up by one per frame, mod 2**16."""

    def __init__(self, *, first_seq: int = 0) -> None:
        if not isinstance(first_seq, int) or not 0 <= first_seq < SEQ_MODULUS:
            raise LocalProtocolError(f"`first_seq` must be in 0..65535, got {first_seq!r}")
        self._next_seq = first_seq

    @property
    def next_seq(self) -> int:
        """The seq the next frame will carry."""
        return self._next_seq

    def encode(self, message: Message, *, flags: Flags | int = Flags.NONE) -> bytes:
        """The wire frame for `message` with the next seq; the seq advances only on success."""
        frame = encode(message, seq=self._next_seq, flags=flags)
        self._next_seq = (self._next_seq + 1) % SEQ_MODULUS
        return frame
