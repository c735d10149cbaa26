"""The frame check: CRC-32/ISO-HDLC (the CRC of zlib, Ethernet, PNG), with its parameters.

Parameters in the Rocksoft model (Williams, "A painless guide to CRC error detection
algorithms"), as catalogued by Greg Cook's CRC RevEng under the name CRC-32/ISO-HDLC:
width 32, poly 0x04C11DB7, init 0xFFFFFFFF, refin true, refout true, xorout 0xFFFFFFFF,
check 0xCBF43926 (the CRC of the nine ASCII bytes "123456789").

Reflected input processes each byte least significant bit first, which is the order a UART
puts the bits on the wire, so a burst of consecutive line bits is a burst for the CRC too.
"""

from __future__ import annotations

import zlib

CRC_NAME = "CRC-32/ISO-HDLC"
CRC_WIDTH = 32
CRC_POLY = 0x04C11DB7
CRC_INIT = 0xFFFFFFFF
CRC_REFIN = True
CRC_REFOUT = True
CRC_XOROUT = 0xFFFFFFFF
CRC_CHECK = 0xCBF43926


def crc32(data: bytes) -> int:
    """CRC-32/ISO-HDLC of `data` (zlib's implementation of exactly these parameters)."""
    return zlib.crc32(data)
