"""The frame CRC is exactly CRC-32/ISO-HDLC: check value, and a from-the-parameters model."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from firmware_protocol import crc
from firmware_protocol.crc import crc32


def reflect(value: int, width: int) -> int:
    return int(f"{value:0{width}b}"[::-1], 2)


def rocksoft_crc(data: bytes, *, width: int, poly: int, init: int, refin: bool, refout: bool,
                 xorout: int) -> int:
    """Bit-at-a-time CRC straight from the Rocksoft model's definition (MSB-first register)."""
    top = 1 << (width - 1)
    mask = (1 << width) - 1
    register = init
    for byte in data:
        byte = reflect(byte, 8) if refin else byte
        register ^= byte << (width - 8)
        for _ in range(8):
            register = ((register << 1) ^ poly) & mask if register & top else (register << 1) & mask
    register = reflect(register, width) if refout else register
    return register ^ xorout


PARAMETERS = dict(width=crc.CRC_WIDTH, poly=crc.CRC_POLY, init=crc.CRC_INIT, refin=crc.CRC_REFIN,
                  refout=crc.CRC_REFOUT, xorout=crc.CRC_XOROUT)


def test_crc_of_123456789_is_the_catalogued_check_value():
    assert crc.CRC_CHECK == 0xCBF43926
    assert crc32(b"123456789") == crc.CRC_CHECK
    assert rocksoft_crc(b"123456789", **PARAMETERS) == crc.CRC_CHECK


@given(st.binary(max_size=64))
def test_crc_matches_the_model_built_from_the_stated_parameters(data):
    assert crc32(data) == rocksoft_crc(data, **PARAMETERS)
