"""The serial bridge's opening: HELLO until CAPABILITIES, the rig checked against the
configuration, then its first STATEs (firmware_protocol/PROTOCOL.md, sections 9 and 10).

Each HELLO of a handshake carries one random nonce, and only a CAPABILITIES that echoes it
is the answer. A board that resets when its port is opened hears none of the first HELLOs
and then sends its power-up CAPABILITIES unasked (nonce 0): that one is ignored (counted in
`stale_capabilities`) and the next HELLO's answer is taken. Should a CAPABILITIES be
followed by no STATE, the handshake says HELLO again (counted in `unanswered_capabilities`)
until its time is up. A rig that speaks another protocol version is refused at its first
CRC-valid frame (RigMismatch, exit 2), naming both versions and the fix.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import serial

from firmware_protocol import (
    MAX_STATE_VALUES,
    PROTOCOL_VERSION,
    Capabilities,
    ControlUnit,
    Hello,
    StateEncoding,
    StateLayout,
)
from firmware_protocol.messages import new_nonce
from hil.config import ConfigError
from hil.dynamics.inputs import Inputs
from plant_server.backends.serial_intake import RigIntake, Sample
from plant_server.backends.serial_io import FrameWriter, read_chunk

# Which rig layout stands for which plant model (PROTOCOL.md section 6).
LAYOUTS = {"dip": StateLayout.DOUBLE_INVERTED_PENDULUM, "cartpole": StateLayout.CART_POLE}
HELLO_RETRY_NS = 200_000_000
# The handshake waits for this many STATEs: the rig clock's offset is the fastest of them,
# and the first STATE may queue behind CAPABILITIES.
STATES_AT_OPEN = 8


class RigUnreachable(Exception):
    """No rig answered on the port (or the port cannot be opened); names the port."""


class RigMismatch(ConfigError):
    """The rig on the port is not the plant the configuration describes."""


def model_inputs(model: Any) -> Inputs:
    """The plant model's inputs (`model.inputs`; a model without gives its one input from
    `input_name`, `input_unit` and `max_force_n`)."""
    inputs = getattr(model, "inputs", None)
    if isinstance(inputs, Inputs):
        return inputs
    return Inputs.single(getattr(model, "input_name", "force"),
                         getattr(model, "input_unit", "N"), model.max_force_n)


@dataclass(frozen=True, slots=True)
class RigExpectation:
    """The rig the configuration describes: the plant model's name, its rig layout (None if
    it has none: the rig must then be DECLARED), its states and inputs, and the run's rate."""

    model_name: str
    layout: StateLayout | None
    rate_hz: float
    period_ns: int
    n_states: int
    inputs: Inputs


def rig_expectation(model: Any, rate_hz: float, period_ns: int) -> RigExpectation:
    """What a rig standing in for `model` must be; RigMismatch (exit 2) if no rig can: more
    states than a STATE frame carries."""
    n_states = len(model.state_names)
    if not 1 <= n_states <= MAX_STATE_VALUES:
        raise RigMismatch(f"plant.model {model.name!r} has {n_states} states; a rig's STATE "
                          f"frame carries 1 to {MAX_STATE_VALUES} (firmware_protocol/"
                          "PROTOCOL.md section 5): simulate it (plant.backend: sim)")
    return RigExpectation(model.name, LAYOUTS.get(model.name), rate_hz, period_ns, n_states,
                          model_inputs(model))


def check_capabilities(caps: Capabilities, expected: RigExpectation, port: str,
                       log: Any = None) -> Inputs:
    """The inputs the run may command: the model's, each within the tighter of its own and
    the rig's limits. RigMismatch, naming the port and the fix, if the rig is another plant,
    encoding, unit, rate or number of inputs than `expected`; a warning on `log` if its
    watchdog is short."""
    where = f"the rig on {port} (rig id {caps.rig_id:#010x})"
    if caps.state_layout not in (expected.layout, StateLayout.DECLARED):
        layout = (expected.layout.name if expected.layout is not None
                  else f"a rig of layout {StateLayout.DECLARED.name}")
        raise RigMismatch(f"{where} is a {caps.state_layout.name}, but plant.model is "
                          f"{expected.model_name!r} ({layout}): set plant.model to this rig's")
    if caps.state_encoding != StateEncoding.FLOAT32_SI:
        raise RigMismatch(f"{where} streams {caps.state_encoding.name}; this bridge reads "
                          "STATE frames (FLOAT32_SI) only")
    if caps.control_unit != ControlUnit.PHYSICAL:
        raise RigMismatch(f"{where} takes commands in {caps.control_unit.name}; this bridge "
                          "sends each input in its physical unit (PHYSICAL) only")
    if abs(caps.state_rate_hz - expected.rate_hz) > 1e-9:
        raise RigMismatch(f"{where} streams at {caps.state_rate_hz} Hz, but run.rate_hz is "
                          f"{expected.rate_hz:g}: set run.rate_hz to {caps.state_rate_hz}")
    if log is not None and caps.watchdog_ms * 1e6 < 3 * expected.period_ns:
        log.warning("rig watchdog shorter than 3 periods", port=port,
                    watchdog_ms=caps.watchdog_ms, period_ms=expected.period_ns / 1e6)
    return _shared_limits(caps, expected, where)


def _shared_limits(caps: Capabilities, expected: RigExpectation, where: str) -> Inputs:
    inputs = expected.inputs
    if caps.input_count != inputs.n:
        raise RigMismatch(f"{where} takes {caps.input_count} input(s) per CONTROL, but "
                          f"plant.model {expected.model_name!r} has {inputs.n} "
                          f"{list(inputs.names)}: set plant.model to the plant this rig is")
    low, high = [], []
    for name, (rig_low, rig_high), model_low, model_high in zip(
            inputs.names, caps.input_limits, inputs.low, inputs.high, strict=True):
        low.append(max(model_low, rig_low))
        high.append(min(model_high, rig_high))
        if not low[-1] < high[-1]:
            raise RigMismatch(f"{where} keeps input {name!r} within [{rig_low:g}, "
                              f"{rig_high:g}], which leaves nothing of the model's "
                              f"[{model_low:g}, {model_high:g}]: check the model's limits")
    return Inputs(inputs.names, inputs.units, tuple(low), tuple(high))


def version_refusal(port: str, peer_version: int) -> str:
    """What the user reads when the rig speaks another protocol version (PROTOCOL.md 9)."""
    return (f"the rig on {port} speaks rig protocol version {peer_version}, this host speaks "
            f"version {PROTOCOL_VERSION}: reflash the rig with firmware of protocol version "
            f"{PROTOCOL_VERSION} (firmware_protocol/firmware: make -C "
            f"firmware_protocol/firmware board), or run the hil-runtime release that speaks "
            f"version {peer_version}")


def rig_description(model_description: dict[str, Any], inputs: Inputs,
                    caps: Capabilities | None) -> dict[str, Any]:
    """The bridge's description: the model's, its inputs' limits as the run keeps them
    (narrowed to the rig's), the rig's CAPABILITIES under `rig`."""
    return {**model_description, **inputs.describe(),
            "backend": "serial", "rig": capabilities_dict(caps)}


def capabilities_dict(caps: Capabilities | None) -> dict[str, Any] | None:
    """The rig's CAPABILITIES as the description and the report show them."""
    if caps is None:
        return None
    return {
        "rig_id": caps.rig_id,
        "firmware_version": ".".join(map(str, caps.firmware_version)),
        "state_layout": caps.state_layout.name,
        "state_encoding": caps.state_encoding.name,
        "control_unit": caps.control_unit.name,
        "state_rate_hz": caps.state_rate_hz,
        "watchdog_ms": caps.watchdog_ms,
        "input_limits": [list(pair) for pair in caps.input_limits],
    }


class Handshake:
    """Opens the link to the rig on `ser` on the caller's thread (no reader thread yet):
    `run()` opens the port (for this process alone) and returns the newest of the rig's
    first STATEs, its CAPABILITIES in `intake.capabilities`; or closes the port and raises
    RigUnreachable or RigMismatch, naming the port."""

    def __init__(self, ser: serial.Serial, tx: FrameWriter, intake: RigIntake,
                 expected: RigExpectation, *, port: str, baud: int, timeout_ns: int,
                 silence_timeout_ns: int, log: Any = None, clock: Callable[[], int]) -> None:
        self._ser = ser
        self._tx = tx
        self._intake = intake
        self._expected = expected
        self._port = port
        self._baud = baud
        self._timeout_ns = timeout_ns
        self._states_timeout_ns = max(silence_timeout_ns, 20 * expected.period_ns)
        self._log = log
        self._clock = clock
        self.unanswered_capabilities = 0
        self.nonce = new_nonce()
        self.inputs: Inputs | None = None  # the run's, once the rig is checked

    def run(self) -> Sample:
        """HELLO (again, after an answer no STATE followed) until the first STATEs."""
        try:
            self._ser.port = self._port
            self._ser.open()
        except (serial.SerialException, OSError, ValueError) as exc:
            raise RigUnreachable(f"cannot open serial port {self._port}: {exc}") from None
        try:
            self._ser.reset_input_buffer()
            self._tx.write(b"\x00")  # ends whatever partial frame the rig's receiver holds
            give_up = self._clock() + self._timeout_ns
            self._intake.expected_nonce = self.nonce
            while True:
                caps = self._hello(give_up)
                self.inputs = check_capabilities(caps, self._expected, self._port, self._log)
                first = self._first_states(give_up)
                if first is not None:
                    return first
                # Our nonce came back but no STATE followed (the rig reset right after it
                # answered, and its power-up CAPABILITIES was ignored): say HELLO again.
                self.unanswered_capabilities += 1
                self._intake.capabilities = None
        except BaseException:
            self._ser.close()
            raise

    def _hello(self, give_up: int) -> Capabilities:
        """HELLO every HELLO_RETRY_NS until CAPABILITIES come, or RigUnreachable at
        `give_up`."""
        hellos = 0
        intake = self._intake
        while (caps := intake.capabilities) is None:
            if intake.peer_version is not None:  # a CRC-valid frame of another version
                raise RigMismatch(version_refusal(self._port, intake.peer_version))
            now = self._clock()
            if now >= give_up:
                detail = self._intake.version_problem or (
                    "is the rig powered, on this port and at this baud rate?")
                raise RigUnreachable(
                    f"no CAPABILITIES from the rig on {self._port} within "
                    f"{self._timeout_ns / 1e6:.0f} ms ({hellos} HELLOs sent at "
                    f"{self._baud} baud): {detail}")
            self._tx.send(Hello(nonce=self.nonce))
            hellos += 1
            self._pump_until(min(give_up, now + HELLO_RETRY_NS),
                             lambda: intake.capabilities is not None
                             or intake.peer_version is not None)
        return caps

    def _first_states(self, give_up: int) -> Sample | None:
        """The newest of the rig's first STATEs after its CAPABILITIES; None when none came
        within the wait but the handshake's time is not up (say HELLO again)."""
        counters = self._intake.counters
        self._pump_until(self._clock() + self._states_timeout_ns,
                         lambda: counters["states_rx"] >= STATES_AT_OPEN)
        latest = self._intake.latest
        if latest is not None:
            return latest
        if (count := self._intake.mismatched_state_count) is not None:
            raise RigMismatch(
                f"the rig on {self._port} streams {count} state values, but plant.model "
                f"{self._expected.model_name!r} has {self._expected.n_states} states: set "
                "plant.model to the plant this rig is")
        if self._clock() < give_up:
            return None
        raise RigUnreachable(
            f"the rig on {self._port} sent CAPABILITIES but no STATE within "
            f"{self._states_timeout_ns / 1e6:.0f} ms of it, until the handshake's "
            f"{self._timeout_ns / 1e6:.0f} ms were up ({self.unanswered_capabilities} "
            "CAPABILITIES went unanswered by STATEs): is the rig's firmware streaming after "
            "HELLO?")

    def _pump_until(self, deadline_ns: int, done: Callable[[], bool]) -> None:
        """Read and take in frames on this thread until `done()` or the deadline."""
        while not done() and self._clock() < deadline_ns:
            try:
                data = read_chunk(self._ser)
            except (serial.SerialException, OSError) as exc:
                raise RigUnreachable(f"serial port {self._port} failed: {exc}") from None
            if data:
                self._intake.receive(data, self._clock())
