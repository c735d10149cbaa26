"""Consistent Overhead Byte Stuffing (Cheshire & Baker, IEEE/ACM ToN 7(2), 1999).

COBS rewrites a byte string so that it contains no 0x00, which then marks the end of a
frame on the wire. Each block starts with a code byte c: c - 1 data bytes follow, then an
implied 0x00 unless c is 0xFF or the block is the last one. Bodies below 254 bytes (all of
this protocol's) cost exactly one byte of overhead.
"""

from __future__ import annotations

_MAX_RUN = 254  # data bytes in a block whose code byte is 0xFF


class CobsError(ValueError):
    """The bytes are not a valid COBS encoding."""


def cobs_encode(data: bytes) -> bytes:
    """Encode `data`; the result contains no 0x00 and is one byte longer per 254 bytes."""
    out = bytearray()
    chunks = bytes(data).split(b"\x00")
    last = len(chunks) - 1
    for index, chunk in enumerate(chunks):
        while len(chunk) >= _MAX_RUN:
            out.append(0xFF)
            out += chunk[:_MAX_RUN]
            chunk = chunk[_MAX_RUN:]
            if not chunk and index == last:
                return bytes(out)
        out.append(len(chunk) + 1)
        out += chunk
    return bytes(out)


def cobs_decode(encoded: bytes) -> bytes:
    """Decode one COBS block sequence (without its 0x00 delimiter); strict about lengths.

    Raises `CobsError` if `encoded` contains 0x00 or a block runs past the end.
    """
    if 0 in encoded:
        raise CobsError(f"0x00 at offset {encoded.index(0)} inside a COBS frame")
    out = bytearray()
    size = len(encoded)
    offset = 0
    while offset < size:
        code = encoded[offset]
        end = offset + code
        if end > size:
            raise CobsError(
                f"block at offset {offset} claims {code - 1} data bytes, "
                f"{size - offset - 1} remain"
            )
        out += encoded[offset + 1 : end]
        offset = end
        if code != 0xFF and offset < size:
            out.append(0)
    return bytes(out)
