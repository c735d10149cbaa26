"""Can a serial link carry the loop? Frame rates from baud rate and frame sizes.

A UART with 8N1 framing spends 10 bit times per byte (start, 8 data, stop). The link is
full duplex: STATE frames flow rig -> host while CONTROL frames flow host -> rig, so the
larger of the two frames bounds the rate. The result is the 100 % utilisation ceiling;
leave margin for HEARTBEAT/FAULT frames and the USB adapter's scheduling.
"""

from __future__ import annotations

UART_8N1_BITS_PER_BYTE = 10


def max_rate_hz(
    baud: int,
    state_frame_bytes: int,
    control_frame_bytes: int,
    *,
    bits_per_byte: int = UART_8N1_BITS_PER_BYTE,
) -> float:
    """Highest STATE/CONTROL exchange rate, Hz, that `baud` carries at full utilisation.

    >>> round(max_rate_hz(460_800, 40, 17))  # double pendulum STATE, CONTROL
    1152
    """
    for name, value in (
        ("baud", baud),
        ("state_frame_bytes", state_frame_bytes),
        ("control_frame_bytes", control_frame_bytes),
        ("bits_per_byte", bits_per_byte),
    ):
        if not value > 0:
            raise ValueError(f"`{name}` must be > 0, got {value!r}")
    return baud / bits_per_byte / max(state_frame_bytes, control_frame_bytes)
