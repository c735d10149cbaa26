"""PROTOCOL.md quotes numbers a firmware author will trust: keep them equal to the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fp_vectors import FRAMES

import firmware_protocol
from firmware_protocol import (
    CRC_CHECK,
    Capabilities,
    Clear,
    Control,
    ControlUnit,
    Estop,
    Fault,
    Heartbeat,
    Hello,
    State,
    StateEncoding,
    StateLayout,
    StateRaw,
    frame_bytes,
    max_rate_hz,
)
from firmware_protocol import crc as crc_parameters
from firmware_protocol.link_budget import (
    capabilities_frame_bytes,
    control_frame_bytes,
    link_budget,
    state_frame_bytes,
)

SPEC = Path(firmware_protocol.__file__).with_name("PROTOCOL.md").read_text()


def tables(heading: str) -> list[list[list[str]]]:
    """The tables of the section whose heading starts with `heading`, as rows of cells,
    header row included, separator rows left out."""
    section = SPEC.split(f"\n## {heading}", 1)[1].split("\n## ", 1)[0]
    found: list[list[list[str]]] = []
    in_table = False
    for line in section.splitlines():
        if not line.startswith("|"):
            in_table = False
            continue
        if not in_table:
            found.append([])
            in_table = True
        if not set(line) <= set("|- "):
            found[-1].append([cell.strip() for cell in line.strip("|").split("|")])
    return found


def test_every_worked_example_is_a_vector():
    wires = re.findall(r"^wire +([0-9A-F ]+)$", SPEC, flags=re.MULTILINE)
    assert len(wires) == 4
    hexes = {v.hex for v in FRAMES}
    for wire in wires:
        assert wire.replace(" ", "").lower() in hexes


def test_crc_parameters_and_check_value_are_those_of_the_code():
    [[header, row]] = tables("4. CRC")
    assert header[:6] == ["width", "poly", "init", "refin", "refout", "xorout"]
    assert row == [str(crc_parameters.CRC_WIDTH), f"0x{crc_parameters.CRC_POLY:08X}",
                   f"0x{crc_parameters.CRC_INIT:08X}", "true", "true",
                   f"0x{crc_parameters.CRC_XOROUT:08X}", f"0x{CRC_CHECK:08X}"]


def capabilities(n_inputs: int) -> Capabilities:
    return Capabilities(1, (2, 0, 0), StateLayout.CART_POLE, StateEncoding.FLOAT32_SI,
                        ControlUnit.PHYSICAL, 1000, 50, 4096, 10000, 7,
                        ((-10.0, 10.0),) * n_inputs)


SIZED = {
    "STATE, double pendulum (6 values)": State(0, (0.0,) * 6),
    "STATE, cart-pole (4 values)": State(0, (0.0,) * 4),
    "STATE_RAW, double pendulum (3 counts)": StateRaw(0, (0,) * 3),
    "STATE_RAW, cart-pole (2 counts)": StateRaw(0, (0,) * 2),
    "CONTROL, 1 input": Control((0.0,), 0),
    "CONTROL, 2 inputs": Control((0.0,) * 2, 0),
    "CONTROL, 4 inputs": Control((0.0,) * 4, 0),
    "CONTROL, 8 inputs": Control((0.0,) * 8, 0),
    "CAPABILITIES, 1 input": capabilities(1),
    "CAPABILITIES, 2 inputs": capabilities(2),
    "CAPABILITIES, 8 inputs": capabilities(8),
    "HEARTBEAT": Heartbeat(0),
    "HELLO": Hello(),
    "FAULT": Fault(1),
    "ESTOP, CLEAR": Estop(),
}


def test_frame_size_table_matches_the_encoder():
    rows = dict(tables("11.")[0][1:])
    assert rows == {label: str(frame_bytes(m)) for label, m in SIZED.items()}
    assert frame_bytes(Estop()) == frame_bytes(Clear())
    for n in range(1, 9):
        assert frame_bytes(Control((0.0,) * n, 0)) == control_frame_bytes(n)
        assert frame_bytes(capabilities(n)) == capabilities_frame_bytes(n)
        assert frame_bytes(State(0, (0.0,) * n)) == state_frame_bytes(n)


@pytest.mark.parametrize("baud", [115200, 460800, 1000000])
def test_max_rate_table_matches_max_rate_hz(baud):
    rate_rows = {row[0]: row[1:] for row in tables("11.")[1][1:]}
    states = [State(0, (0.0,) * 6), State(0, (0.0,) * 4), StateRaw(0, (0,) * 3),
              StateRaw(0, (0,) * 2)]
    control = frame_bytes(Control((0.0,), 0))
    assert rate_rows[str(baud)] == [
        f"{round(max_rate_hz(baud, frame_bytes(s), control))} Hz" for s in states
    ]


def test_several_inputs_table_matches_link_budget_at_115200_baud():
    rows = tables("11.")[2]
    assert rows[0][:3] == ["inputs", "CONTROL bytes", "CONTROL wire time"]
    for row in rows[1:]:
        n_inputs = int(row[0])
        budgets = [link_budget(115200, n, n_inputs) for n in (4, 6, 8)]
        assert row[1:] == [str(budgets[0].control_frame_bytes),
                           f"{budgets[0].control_wire_ms:.2f} ms",
                           *(f"{round(b.max_rate_hz)} Hz" for b in budgets)]
    assert [int(row[0]) for row in rows[1:]] == [1, 2, 4, 8]


def test_message_table_lists_every_type_code():
    codes = {row[0] for row in tables("5. Messages")[0][1:]}
    assert codes == {f"0x{t:02X}" for t in firmware_protocol.MessageType}
