"""Wire protocol between the plant server and a pendulum rig's microcontroller.

Sans-I/O: this package turns messages into bytes and bytes into events; it never touches a
serial port. PROTOCOL.md is the specification; `c/` holds the C reference codec for
firmware; `vectors.json` the test vectors both codecs reproduce.

    frame = encode(Control(commands=(1.5,), state_seq=41), seq=7)  # bytes to write
    decoder = Decoder()
    decoder.feed(port.read(...))                               # bytes read
    for event in decoder:                                       # until NEED_DATA
        ...
"""

from firmware_protocol.codec import (
    CRC_BYTES,
    HEADER_BYTES,
    MAX_BODY_BYTES,
    MAX_ENCODED_BYTES,
    MAX_FRAME_BYTES,
    MAX_PAYLOAD_BYTES,
    PROTOCOL_VERSION,
    Encoder,
    decode,
    encode,
    frame_bytes,
)
from firmware_protocol.crc import CRC_CHECK, CRC_NAME, crc32
from firmware_protocol.decoder import Decoder, DecoderStatistics
from firmware_protocol.errors import (
    BufferFullError,
    LocalProtocolError,
    ProtocolError,
    RejectReason,
    RemoteProtocolError,
)
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
from firmware_protocol.link_budget import LinkBudget, link_budget, max_rate_hz
from firmware_protocol.messages import (
    MAX_INPUTS,
    MAX_STATE_VALUES,
    Capabilities,
    Clear,
    Control,
    ControlUnit,
    Estop,
    Fault,
    FaultCode,
    Flags,
    Heartbeat,
    Hello,
    Message,
    MessageType,
    State,
    StateEncoding,
    StateLayout,
    StateRaw,
)

__all__ = [
    "CRC_BYTES",
    "CRC_CHECK",
    "CRC_NAME",
    "HEADER_BYTES",
    "MAX_BODY_BYTES",
    "MAX_ENCODED_BYTES",
    "MAX_FRAME_BYTES",
    "MAX_INPUTS",
    "MAX_PAYLOAD_BYTES",
    "MAX_STATE_VALUES",
    "NEED_DATA",
    "PROTOCOL_VERSION",
    "BufferFullError",
    "Capabilities",
    "Clear",
    "Control",
    "ControlUnit",
    "Decoder",
    "DecoderStatistics",
    "DuplicateFrame",
    "Encoder",
    "Estop",
    "Event",
    "Fault",
    "FaultCode",
    "Flags",
    "Frame",
    "FrameRejected",
    "Heartbeat",
    "Hello",
    "LinkBudget",
    "LocalProtocolError",
    "Message",
    "MessageType",
    "NeedData",
    "ProtocolError",
    "RejectReason",
    "RemoteProtocolError",
    "SequenceGap",
    "SequenceReset",
    "State",
    "StateEncoding",
    "StateLayout",
    "StateRaw",
    "crc32",
    "decode",
    "encode",
    "frame_bytes",
    "link_budget",
    "max_rate_hz",
]
