"""max_rate_hz: the serial link's ceiling on the STATE/CONTROL exchange rate."""

from __future__ import annotations

import pytest

from firmware_protocol import max_rate_hz


@pytest.mark.parametrize(
    ("baud", "state", "control", "rate_hz"),
    [
        (115200, 40, 17, 288.0),
        (460800, 40, 17, 1152.0),
        (1000000, 40, 17, 2500.0),
        (1000000, 10, 20, 5000.0),  # the larger frame bounds the rate, whichever it is
    ],
)
def test_rate_is_bytes_per_second_over_the_larger_frame(baud, state, control, rate_hz):
    assert max_rate_hz(baud, state, control) == rate_hz


def test_other_uart_framings_set_bits_per_byte():
    assert max_rate_hz(110000, 40, 17, bits_per_byte=11) == 250.0  # 8E1: parity bit


@pytest.mark.parametrize("bad", [{"baud": 0}, {"state_frame_bytes": -1},
                                 {"control_frame_bytes": 0}, {"bits_per_byte": 0}])
def test_non_positive_arguments_are_refused_by_name(bad):
    arguments = {"baud": 115200, "state_frame_bytes": 40, "control_frame_bytes": 17,
                 "bits_per_byte": 10, **bad}
    [name] = bad
    with pytest.raises(ValueError, match=f"`{name}` must be > 0"):
        max_rate_hz(**arguments)
