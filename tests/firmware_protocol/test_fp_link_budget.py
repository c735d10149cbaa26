"""max_rate_hz: the serial link's ceiling on the STATE/CONTROL exchange rate."""

from __future__ import annotations

import pytest

from firmware_protocol import link_budget, max_rate_hz


@pytest.mark.parametrize(
    ("baud", "state", "control", "rate_hz"),
    [
        (115200, 40, 18, 288.0),
        (460800, 40, 18, 1152.0),
        (1000000, 40, 18, 2500.0),
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


@pytest.mark.parametrize(
    ("n_inputs", "control_bytes", "rate_hz", "bound_by"),
    [(1, 18, 288.0, "STATE"), (2, 22, 288.0, "STATE"), (4, 30, 288.0, "STATE"),
     (8, 46, 115200 / 10 / 46, "CONTROL")],
)
def test_the_budget_of_a_six_state_rig_at_115200_baud_by_inputs(n_inputs, control_bytes,
                                                                rate_hz, bound_by):
    budget = link_budget(115200, 6, n_inputs)
    assert (budget.state_frame_bytes, budget.control_frame_bytes) == (40, control_bytes)
    assert budget.max_rate_hz == rate_hz
    assert budget.bound_by == bound_by
    assert budget.control_wire_ms == pytest.approx(control_bytes * 10 / 115.2)


@pytest.mark.parametrize("bad", [{"n_states": 0}, {"n_inputs": 9}, {"n_inputs": 1.0}])
def test_budget_counts_outside_the_protocol_are_refused_by_name(bad):
    arguments = {"baud": 115200, "n_states": 6, "n_inputs": 1, **bad}
    [name] = bad
    with pytest.raises(ValueError, match=f"`{name}` must be an int in 1..8"):
        link_budget(**arguments)
