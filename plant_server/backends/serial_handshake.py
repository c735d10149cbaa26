"""The serial bridge's opening: HELLO until CAPABILITIES, the rig checked against the
configuration, then its first STATEs (firmware_protocol/PROTOCOL.md).

A board that resets when its port is opened hears none of the first HELLOs and then sends
its power-up CAPABILITIES unasked; no STATE follows that one, so the handshake says HELLO
again (counted in `unanswered_capabilities`) until its time is up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import serial

from firmware_protocol import Capabilities, ControlUnit, Hello, StateEncoding, StateLayout
from hil.config import ConfigError
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


@dataclass(frozen=True, slots=True)
class RigExpectation:
    """The rig the configuration describes: the plant model's name and its rig layout (None
    if it has none), and the run's rate."""

    model_name: str
    layout: StateLayout | None
    rate_hz: float
    period_ns: int


def check_capabilities(caps: Capabilities, expected: RigExpectation, port: str,
                       log: Any = None) -> None:
    """RigMismatch, naming the port and the fix, if the rig is another plant, encoding,
    unit or rate than `expected`; a warning on `log` if its watchdog is short."""
    where = f"the rig on {port} (rig id {caps.rig_id:#010x})"
    if caps.state_layout != expected.layout:
        layout = expected.layout.name if expected.layout is not None else "no known layout"
        raise RigMismatch(f"{where} is a {caps.state_layout.name}, but plant.model is "
                          f"{expected.model_name!r} ({layout})")
    if caps.state_encoding != StateEncoding.FLOAT32_SI:
        raise RigMismatch(f"{where} streams {caps.state_encoding.name}; this bridge reads "
                          "STATE frames (FLOAT32_SI) only")
    if caps.control_unit != ControlUnit.FORCE_N:
        raise RigMismatch(f"{where} takes commands in {caps.control_unit.name}; this bridge "
                          "sends forces (FORCE_N) only")
    if abs(caps.state_rate_hz - expected.rate_hz) > 1e-9:
        raise RigMismatch(f"{where} streams at {caps.state_rate_hz} Hz, but run.rate_hz is "
                          f"{expected.rate_hz:g}: set run.rate_hz to {caps.state_rate_hz}")
    if caps.max_command <= 0:
        raise RigMismatch(f"{where} reports max_command {caps.max_command}, must be > 0")
    if log is not None and caps.watchdog_ms * 1e6 < 3 * expected.period_ns:
        log.warning("rig watchdog shorter than 3 periods", port=port,
                    watchdog_ms=caps.watchdog_ms, period_ms=expected.period_ns / 1e6)


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
        "max_command": caps.max_command,
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

    def run(self) -> Sample:
        """HELLO (again, after a CAPABILITIES no STATE followed) until the first STATEs."""
        try:
            self._ser.port = self._port
            self._ser.open()
        except (serial.SerialException, OSError, ValueError) as exc:
            raise RigUnreachable(f"cannot open serial port {self._port}: {exc}") from None
        try:
            self._ser.reset_input_buffer()
            self._tx.write(b"\x00")  # ends whatever partial frame the rig's receiver holds
            give_up = self._clock() + self._timeout_ns
            while True:
                caps = self._hello(give_up)
                check_capabilities(caps, self._expected, self._port, self._log)
                first = self._first_states(give_up)
                if first is not None:
                    return first
                # CAPABILITIES but no STATE: it was not the answer to a HELLO (a rig that
                # booted while our HELLOs went unheard sends one unasked). Say HELLO again.
                self.unanswered_capabilities += 1
                self._intake.capabilities = None
        except BaseException:
            self._ser.close()
            raise

    def _hello(self, give_up: int) -> Capabilities:
        """HELLO every HELLO_RETRY_NS until CAPABILITIES come, or RigUnreachable at
        `give_up`."""
        hellos = 0
        while (caps := self._intake.capabilities) is None:
            now = self._clock()
            if now >= give_up:
                detail = self._intake.version_problem or (
                    "is the rig powered, on this port and at this baud rate?")
                raise RigUnreachable(
                    f"no CAPABILITIES from the rig on {self._port} within "
                    f"{self._timeout_ns / 1e6:.0f} ms ({hellos} HELLOs sent at "
                    f"{self._baud} baud): {detail}")
            self._tx.send(Hello())
            hellos += 1
            self._pump_until(min(give_up, now + HELLO_RETRY_NS),
                             lambda: self._intake.capabilities is not None)
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
