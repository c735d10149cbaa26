"""The shared test vectors (firmware_protocol/vectors.json) as Python objects.

This is the one table of cases: the encode tests, the decode tests (whole, byte by byte,
with trailing bytes) and the C codec tests all iterate over it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import firmware_protocol
from firmware_protocol import (
    Flags,
    Frame,
    Message,
    MessageType,
    RejectReason,
    encode,
)
from firmware_protocol.messages import MESSAGE_CLASSES

VECTORS_PATH = Path(firmware_protocol.__file__).with_name("vectors.json")


@dataclass(frozen=True)
class FrameVector:
    name: str
    seq: int
    flags: Flags
    message: Message
    hex: str

    @property
    def frame(self) -> Frame:
        return Frame(self.seq, self.flags, self.message)

    @property
    def wire(self) -> bytes:
        return bytes.fromhex(self.hex)

    def frame_hex_from_python(self) -> str:
        return encode(self.message, seq=self.seq, flags=self.flags).hex()


@dataclass(frozen=True)
class RejectVector:
    name: str
    reason: RejectReason
    hex: str

    @property
    def wire(self) -> bytes:
        return bytes.fromhex(self.hex)


def load() -> dict:
    return json.loads(VECTORS_PATH.read_text())


def frame_vectors(document: dict | None = None) -> list[FrameVector]:
    document = load() if document is None else document
    return [
        FrameVector(
            name=entry["name"],
            seq=entry["seq"],
            flags=Flags(entry["flags"]),
            message=MESSAGE_CLASSES[MessageType[entry["type"]]](**entry["fields"]),
            hex=entry.get("hex", ""),
        )
        for entry in document["frames"]
    ]


def reject_vectors(document: dict | None = None) -> list[RejectVector]:
    document = load() if document is None else document
    return [
        RejectVector(entry["name"], RejectReason(entry["reason"]), entry.get("hex", ""))
        for entry in document["rejects"]
    ]


FRAMES = frame_vectors()
REJECTS = reject_vectors()
