"""Can a serial link carry the loop? Frame sizes and rates from baud rate, states and inputs.

A UART with 8N1 framing spends 10 bit times per byte (start, 8 data, stop). The link is
full duplex: STATE frames flow rig -> host while CONTROL frames flow host -> rig, so the
larger of the two frames bounds the rate. The result is the 100 % utilisation ceiling;
leave margin for HEARTBEAT/FAULT frames and the USB adapter's scheduling.

Frame sizes follow from PROTOCOL.md section 5 (header 5, CRC 4, COBS 1, delimiter 1):
STATE 16 + 4 n for n values, CONTROL 14 + 4 m for m inputs, CAPABILITIES 38 + 8 m.
"""

from __future__ import annotations

from dataclasses import dataclass

UART_8N1_BITS_PER_BYTE = 10
_FRAMING_BYTES = 5 + 4 + 1 + 1  # header, CRC, COBS code byte, delimiter


def state_frame_bytes(n_values: int) -> int:
    """Wire bytes of a STATE (or STATE_RAW) frame of `n_values` values."""
    return _FRAMING_BYTES + 5 + 4 * n_values


def control_frame_bytes(n_inputs: int) -> int:
    """Wire bytes of a CONTROL frame for a rig of `n_inputs` inputs."""
    return _FRAMING_BYTES + 3 + 4 * n_inputs


def capabilities_frame_bytes(n_inputs: int) -> int:
    """Wire bytes of a CAPABILITIES frame declaring `n_inputs` inputs."""
    return _FRAMING_BYTES + 27 + 8 * n_inputs


def max_rate_hz(
    baud: int,
    state_frame_bytes: int,
    control_frame_bytes: int,
    *,
    bits_per_byte: int = UART_8N1_BITS_PER_BYTE,
) -> float:
    """Highest STATE/CONTROL exchange rate, Hz, that `baud` carries at full utilisation.

    >>> round(max_rate_hz(460_800, 40, 18))  # double pendulum STATE, one-input CONTROL
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


@dataclass(frozen=True)
class LinkBudget:
    """What one link carries: frame sizes, their time on the wire, and the rate ceiling."""

    baud: int
    n_states: int
    n_inputs: int
    state_frame_bytes: int
    control_frame_bytes: int
    state_wire_ms: float
    control_wire_ms: float
    max_rate_hz: float

    @property
    def bound_by(self) -> str:
        """Which stream sets the ceiling: "STATE" or "CONTROL"."""
        return "CONTROL" if self.control_frame_bytes > self.state_frame_bytes else "STATE"


def link_budget(baud: int, n_states: int, n_inputs: int) -> LinkBudget:
    """The budget of a rig streaming `n_states` values and taking `n_inputs` commands at
    `baud` (8N1). ValueError naming the argument if a count is outside 1..8."""
    for name, value in (("n_states", n_states), ("n_inputs", n_inputs)):
        if not isinstance(value, int) or not 1 <= value <= 8:
            raise ValueError(f"`{name}` must be an int in 1..8 (the protocol's limit), "
                             f"got {value!r}")
    state, control = state_frame_bytes(n_states), control_frame_bytes(n_inputs)
    ms_per_byte = UART_8N1_BITS_PER_BYTE * 1e3 / baud if baud > 0 else 0.0
    return LinkBudget(baud, n_states, n_inputs, state, control, state * ms_per_byte,
                      control * ms_per_byte, max_rate_hz(baud, state, control))
