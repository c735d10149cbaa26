"""Serial plant backend: a rig on a serial port, bridged into the plant loop.

The rig's microcontroller speaks `firmware_protocol` (firmware_protocol/PROTOCOL.md,
version 2). This backend opens the port with pyserial, sends one 0x00, says HELLO (with a
nonce) and checks the rig's CAPABILITIES against the configuration (its layout, rate and
inputs against the plant model's), then gives the plant loop the rig's newest STATE each
tick and sends each applied input vector as a CONTROL, one command per input. The
controller sees the same messages as from the simulation.

Two threads share the port. A reader thread owns the receive side: it timestamps every
chunk of bytes as it arrives, decodes frames, keeps the newest STATE, sends a HEARTBEAT
when the host has sent nothing for 100 ms, and notices a silent rig (no valid frame for
`silence_timeout`), an unplugged port (a read or write error) and FAULT frames or flags.
The plant loop's thread sends the CONTROLs: one per applied input, and one hold refresh
per tick the controller left unanswered, so the rig's watchdog is fed only while the plant
loop itself runs. Any of those faults sends ESTOP three times (if the port still works) and
sets `fault`, a message naming the port; the plant loop checks it every tick, applies its
safe output and ends the run.

Clocks. The rig stamps each STATE with its own 32-bit microsecond clock, which wraps; the
bridge unwraps it and maps it onto the host's monotonic clock with an offset taken as the
smallest (arrival - rig time) seen over the last 1-2 s: the fastest frame is taken to have
spent only its wire time (`bytes * 10 / baud`) in transit. Through that map the bridge
reports, as latency figures:

- `rig_to_plant`: the rig samples a state -> its STATE frame has been read by the host;
- `rig_age`: the rig samples a state -> the plant loop publishes it;
- `serial_round_trip`: the rig samples a state -> the CONTROL answering it has crossed the
  wire to the rig (host write time + the CONTROL's wire time): the whole loop delay as the
  rig sees it, controller included.

They are exact up to the fastest frame's non-wire delay (tens of microseconds through a
pseudo-terminal) and the rig's clock drift over the window (50 ppm: 100 us at most).

Phase. The rig streams at its own pace and the plant loop ticks on its own schedule at the
same rate, so `align_start_ns` places the plant's first tick (and so every tick) a fraction
`phase_margin` of a period after a STATE is due to arrive. A tick that still finds no new
STATE waits for it up to that margin again, then publishes the previous one and counts a
stale tick; so does a tick whose STATE arrived damaged (rejected by the decoder).
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import serial

from firmware_protocol import (
    Capabilities,
    Clear,
    Control,
    Estop,
    Flags,
    Heartbeat,
    State,
    frame_bytes,
)
from hil.config import Config
from hil.dynamics.inputs import Inputs
from hil.runtime.latency import LatencyMonitor
from plant_server.backends.serial_handshake import (
    LAYOUTS,
    Handshake,
    RigMismatch,
    RigUnreachable,
    capabilities_dict,
    rig_description,
    rig_expectation,
)
from plant_server.backends.serial_intake import RigClock, RigIntake, Sample
from plant_server.backends.serial_io import (
    BITS_PER_BYTE,
    TX_QUEUE_FRAMES,
    FrameWriter,
    wire_ns,
)
from plant_server.backends.serial_reader import RigReader

__all__ = ["BITS_PER_BYTE", "LAYOUTS", "LIVENESS_NS", "SERIAL_FIGURES", "RigMismatch",
           "RigUnreachable", "SerialBackend", "wire_ns"]

SERIAL_FIGURES = ("serial_round_trip", "rig_to_plant", "rig_age")
LIVENESS_NS = 100_000_000  # each side sends some frame at least this often
CLEAR_RETRY_NS = 20_000_000
ESTOP_REPEATS = 3
_READ_TIMEOUT_S = 0.02
_U16 = 1 << 16
# What the bridge itself counts; the intake and the writer count the rest.
_BRIDGE_COUNTERS = ("controls_tx", "samples_skipped", "hold_refreshes", "heartbeats_tx",
                    "clears_tx", "estops_tx", "unanswered_capabilities")
# The report's order of all the counters.
COUNTERS = ("frames_tx", "controls_tx", "bytes_tx", "bytes_rx", "tx_overflow_bytes",
            "states_rx", "stale_ticks", "late_states", "samples_skipped", "hold_refreshes",
            "heartbeats_tx", "clears_tx", "estops_tx", "resyncs", "unexpected_frames",
            "tx_dropped_frames", "tx_truncated_frames", "unanswered_capabilities",
            "stale_capabilities")


def _size_problem(commands: np.ndarray, inputs: Inputs, port: str) -> str | None:
    if commands.shape == (inputs.n,):
        return None
    return (f"the plant loop applied {commands.size} inputs to the rig on {port}, which "
            f"takes {inputs.n} {list(inputs.names)}")


class SerialBackend:
    """A rig on `port` as a plant backend; see the module docstring.

    `model` is the plant the rig is (it gives the state names, the description and the
    inputs, each limit narrowed to the rig's); it is never stepped. `open()` does
    the handshake; the plant loop then calls `align_start_ns`, `start`, `advance`,
    `apply`, and checks `fault`; `close()` sends ESTOP and releases the port. Its parts:
    the handshake (serial_handshake.py), the receive side (serial_intake.py), the reader
    thread that feeds it (serial_reader.py) and the transmit side (serial_io.py); this
    class runs the ticks, latches the first fault either thread finds, and reports.
    """

    def __init__(
        self,
        model: Any,
        port: str,
        baud: int,
        rate_hz: float,
        *,
        handshake_timeout_ns: int = 1_000_000_000,
        silence_timeout_ns: int = 250_000_000,
        phase_margin: float = 0.2,
        log: Any = None,
        on_reader_start: Callable[[], object] | None = None,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        if not 0 < phase_margin < 0.5:
            raise ValueError(f"phase_margin must be in (0, 0.5), got {phase_margin}")
        self.model = model
        self.name = model.name
        self.state_names = tuple(model.state_names)
        self._expected = rig_expectation(model, rate_hz, round(1e9 / rate_hz))
        self.inputs: Inputs = self._expected.inputs  # narrowed to the rig's limits by open()
        self.state = np.zeros(len(self.state_names))
        self.sim_time_ns = 0
        self.port, self.baud, self.rate_hz = port, baud, rate_hz
        self.period_ns = round(1e9 / rate_hz)
        self.latency = LatencyMonitor(SERIAL_FIGURES)
        self.state_frame_bytes = frame_bytes(State(0, (0.0,) * len(self.state_names)))
        self.control_frame_bytes = frame_bytes(Control((0.0,) * self.inputs.n, 0))
        self._handshake_timeout_ns = handshake_timeout_ns
        self._silence_timeout_ns = silence_timeout_ns
        self._margin_ns = round(phase_margin * self.period_ns)
        self._log = log
        self._on_reader_start = on_reader_start
        self._clock = clock
        self._control_wire_ns = wire_ns(self.control_frame_bytes, baud)
        self._intake = RigIntake(port, len(self.state_names),
                                 RigClock(wire_ns(self.state_frame_bytes, baud)), self.latency,
                                 silence_timeout_ns, log=log, clock=clock)
        # The port, opened by the handshake: the parts share it from the start.
        self._ser = serial.Serial(baudrate=baud, timeout=_READ_TIMEOUT_S, write_timeout=0,
                                  exclusive=True)
        self._tx = FrameWriter(self._ser, port, TX_QUEUE_FRAMES * max(
            self.state_frame_bytes, self.control_frame_bytes), on_gone=self._set_fault,
            clock=clock)
        self._reader: RigReader | None = None
        self._fault_lock = threading.Lock()
        self._fault: str | None = None
        self._fault_ns: int | None = None
        self._safe_output_ns: int | None = None
        self._published: Sample | None = None  # the STATE the plant loop took last
        self._t0_ns: int | None = None
        self._first_tick = False
        self._last_clear_ns = 0
        self._u = np.zeros(self.inputs.n)  # the input held
        self._control_since_tick = False
        self._counts = dict.fromkeys(_BRIDGE_COUNTERS, 0)

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_config(cls, config: Config, model: Any, log: Any = None,
                    on_reader_start: Callable[[], object] | None = None) -> SerialBackend:
        """The bridge the config's `serial` section and `run.rate_hz` describe."""
        serial_config = config.serial
        return cls(model, serial_config.port, serial_config.baud, config.run.rate_hz,
                   handshake_timeout_ns=round(serial_config.handshake_timeout_ms * 1e6),
                   silence_timeout_ns=round(serial_config.silence_timeout_ms * 1e6),
                   phase_margin=serial_config.phase_margin, log=log,
                   on_reader_start=on_reader_start)

    def open(self) -> None:
        """Open the port, handshake, wait for the first STATEs, start the reader thread.

        Raises `RigUnreachable` (no port, no answer) or `RigMismatch` (the rig is another
        plant, rate, number of inputs or protocol version than configured), both naming the
        port.
        """
        handshake = Handshake(self._ser, self._tx, self._intake, self._expected,
                              port=self.port, baud=self.baud,
                              timeout_ns=self._handshake_timeout_ns,
                              silence_timeout_ns=self._silence_timeout_ns, log=self._log,
                              clock=self._clock)
        try:
            first = handshake.run()
        finally:
            self._counts["unanswered_capabilities"] = handshake.unanswered_capabilities
        if self._fault is not None:  # a write failed during the handshake
            self._ser.close()
            raise RigUnreachable(self._fault)
        assert handshake.inputs is not None
        self.inputs = handshake.inputs
        self.state[:] = first.values
        self._published = first
        self._reader = RigReader(self._ser, self.port, on_chunk=self._on_chunk,
                                 on_fault=self._set_fault, on_start=self._on_reader_start,
                                 log=self._log, clock=self._clock)
        self._reader.start()

    # ----------------------------------------------------------------- backend interface
    @property
    def capabilities(self) -> Capabilities | None:
        """The rig's CAPABILITIES (None before the handshake)."""
        return self._intake.capabilities

    @property
    def rig_flags(self) -> Flags:
        """The rig's flags as of its last frame."""
        return self._intake.flags

    def describe(self) -> dict[str, Any]:
        """The model's description, inputs narrowed to the rig's, and its CAPABILITIES."""
        return rig_description(self.model.describe(), self.inputs, self.capabilities)

    @property
    def fault(self) -> str | None:
        """Why the rig can no longer be trusted (silent, unplugged, FAULT), naming the port;
        None while the link is healthy. The plant loop checks it every tick."""
        return self._fault

    def align_start_ns(self, t_ns: int) -> int:
        """The first time >= `t_ns` that lies `phase_margin` of a period after a STATE is due
        to arrive: the plant's first tick, so that each tick finds a fresh state."""
        latest = self._intake.latest
        rig_clock = self._intake.rig_clock
        if latest is None or rig_clock.offset_ns is None:
            return t_ns
        due = rig_clock.host_ns(latest.rig_us) + rig_clock.wire_time_ns
        tick = due + self._margin_ns
        if tick < t_ns:
            tick += math.ceil((t_ns - tick) / self.period_ns) * self.period_ns
        return tick

    def start(self, t_ns: int) -> None:
        """Arm the rig: CLEAR now, again every CLEAR_RETRY_NS until it is MOTOR_ENABLED."""
        self._t0_ns = t_ns
        self._first_tick = True  # publishes the newest state: the ticks follow its arrival
        self._last_clear_ns = self._clock()
        self._intake.start(self._last_clear_ns)
        self._tx.send(Clear())
        self._counts["clears_tx"] += 1

    def apply(self, u: Any, t_ns: int) -> None:
        """Send `u` (one number per input; a float for one input) to the rig now, and hold it:
        `advance` refreshes it each tick no control came. After a fault, note when the safe
        output came instead. A `u` of another size is a fault (the rig would refuse it)."""
        commands = np.atleast_1d(np.asarray(u, dtype=np.float64))
        if (problem := _size_problem(commands, self.inputs, self.port)) is not None:
            self._set_fault(problem, self._clock())
        else:
            self._u[:] = commands
        if self._fault is not None:
            if self._safe_output_ns is None:
                self._safe_output_ns = t_ns
            return
        if self._t0_ns is None:
            return
        published = self._published
        sent_ns = self._send_control()
        if sent_ns and published is not None:
            self.latency.record_ns("serial_round_trip", sent_ns + self._control_wire_ns
                                   - published.sample_ns)
        self._control_since_tick = True

    def advance(self, t_ns: int) -> np.ndarray:
        """The rig's newest state at the tick `t_ns` (waiting up to `phase_margin` for it);
        keeps the rig fed (the held force) and arming (CLEAR) while the run is healthy."""
        now = self._clock()
        intake = self._intake
        if (reason := intake.check_link(now)) is not None:
            self._set_fault(reason, now)
        latest = intake.latest
        published = self._published
        assert latest is not None and published is not None
        if self._first_tick:  # states from before the run are neither stale nor skipped
            self._first_tick = False
            published = self._published = latest
            self.state[:] = latest.values
        elif latest.seq == published.seq and self._fault is None:
            latest = intake.wait_fresh(published.seq, t_ns + self._margin_ns)
        if latest.seq != published.seq:
            self._counts["samples_skipped"] += (latest.seq - published.seq - 1) % _U16
            self.state[:] = latest.values
            self._published = latest
        self.latency.record_ns("rig_age", self._clock() - latest.sample_ns)
        if self._t0_ns is not None:
            self.sim_time_ns = max(0, t_ns - self._t0_ns)
            if self._fault is None:
                if not self._control_since_tick and self._send_control():
                    self._counts["hold_refreshes"] += 1
                if not intake.armed_seen and now - self._last_clear_ns >= CLEAR_RETRY_NS:
                    self._tx.send(Clear())
                    self._counts["clears_tx"] += 1
                    self._last_clear_ns = now
        self._control_since_tick = False
        return self.state

    def close(self) -> None:
        """ESTOP the rig (three times) if it was armed, stop the reader, release the port."""
        self._intake.closing = True
        if not self._ser.is_open:
            return
        if self._t0_ns is not None and self._fault is None:
            self._estop()
        if self._reader is not None:
            self._reader.stop()
        with contextlib.suppress(Exception):
            self._ser.close()

    # ----------------------------------------------------------------- sending
    def _send_control(self) -> int:
        """Send the held input answering the published STATE; when it went out (host
        clock), or 0 if it did not."""
        published = self._published
        seq = published.seq if published is not None else 0
        if not self._tx.send(Control(commands=tuple(self._u.tolist()), state_seq=seq)):
            return 0
        self._counts["controls_tx"] += 1
        return self._tx.last_tx_ns

    def _estop(self) -> None:
        for _ in range(ESTOP_REPEATS):  # each, even if one was dropped on a full line
            if self._tx.send(Estop()):
                self._counts["estops_tx"] += 1

    # ----------------------------------------------------------------- reader thread
    def _on_chunk(self, data: bytes, now: int) -> None:
        """What the reader thread read at `now` (nothing, after a quiet read timeout): take
        it in, watch the link, and send a HEARTBEAT when the host has sent nothing for
        LIVENESS_NS."""
        if data:
            self._receive(data, now)
        if (reason := self._intake.check_link(now)) is not None:
            self._set_fault(reason, now)
        if (now - self._tx.last_tx_ns >= LIVENESS_NS and self._fault is None
                and self._tx.send(Heartbeat(timestamp_us=(now // 1000) & 0xFFFFFFFF))):
            self._counts["heartbeats_tx"] += 1

    def _receive(self, data: bytes, t_ns: int) -> None:
        """Take in bytes read at `t_ns`; what they say against the rig is a fault."""
        reason = self._intake.receive(data, t_ns)
        if reason is not None:
            self._set_fault(reason, t_ns)

    def _set_fault(self, reason: str, t_ns: int, estop: bool = True) -> None:
        """Latch the first fault: log it, release the plant loop's wait, ESTOP the rig."""
        with self._fault_lock:
            if self._fault is not None:
                return
            self._fault = reason
            self._fault_ns = t_ns
        if self._log is not None:
            self._log.error("rig fault: plant going safe", port=self.port, reason=reason)
        self._intake.fault_latched()
        if estop:  # the rig may still listen: make sure it is off
            self._estop()

    # ----------------------------------------------------------------- report
    @property
    def counters(self) -> dict[str, int]:
        """Every count of the bridge and its parts, by name (a copy)."""
        every = {**self._counts, **self._intake.counters, **self._tx.counters}
        return {name: every[name] for name in COUNTERS}

    def report(self) -> dict[str, Any]:
        """The `serial` section of plant.json."""
        counters = self.counters
        line = self._intake.line_statistics()
        ceiling_hz = self.baud / BITS_PER_BYTE / max(self.state_frame_bytes,
                                                     self.control_frame_bytes)
        return {
            "port": self.port,
            "baud": self.baud,
            "frames_rx": line.pop("frames_rx"),
            "frames_tx": counters.pop("frames_tx"),
            **line,
            "input_count": self.inputs.n,
            "state_frame_bytes": self.state_frame_bytes,
            "control_frame_bytes": self.control_frame_bytes,
            "max_rate_hz": ceiling_hz,
            "link_utilisation": self.rate_hz / ceiling_hz,
            **counters,
            "rig": capabilities_dict(self.capabilities),
            "rig_fault": self._intake.rig_fault,
            "fault": self._fault,
            "fault_detected_ns": self._fault_ns,
            "safe_output_ns": self._safe_output_ns,
        }
