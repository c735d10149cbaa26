"""Serial plant backend: a pendulum rig on a serial port, bridged into the plant loop.

The rig's microcontroller speaks `firmware_protocol` (firmware_protocol/PROTOCOL.md). This
backend opens the port with pyserial, sends one 0x00, says HELLO and checks the rig's
CAPABILITIES against the configuration, then gives the plant loop the rig's newest STATE
each tick and sends each applied force as a CONTROL. The controller sees the same messages
as from the simulation.

Two threads share the port. A reader thread owns the receive side: it timestamps every
chunk of bytes as it arrives, decodes frames, keeps the newest STATE, sends a HEARTBEAT
when the host has sent nothing for 100 ms, and notices a silent rig (no valid frame for
`silence_timeout`), an unplugged port (a read or write error) and FAULT frames or flags.
The plant loop's thread sends the CONTROLs: one per applied force, and one hold refresh
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
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import serial

from firmware_protocol import (
    Capabilities,
    Clear,
    Control,
    ControlUnit,
    Decoder,
    Encoder,
    Estop,
    Fault,
    FaultCode,
    Flags,
    Frame,
    FrameRejected,
    Heartbeat,
    Hello,
    Message,
    RejectReason,
    State,
    StateEncoding,
    StateLayout,
    frame_bytes,
)
from hil.config import Config, ConfigError
from hil.runtime.latency import LatencyMonitor
from hil.runtime.ratelimit import RateLimiter

SERIAL_FIGURES = ("serial_round_trip", "rig_to_plant", "rig_age")
# Which rig layout stands for which plant model (PROTOCOL.md section 6).
LAYOUTS = {"dip": StateLayout.DOUBLE_INVERTED_PENDULUM, "cartpole": StateLayout.CART_POLE}
BITS_PER_BYTE = 10  # 8N1
HELLO_RETRY_NS = 200_000_000
LIVENESS_NS = 100_000_000  # each side sends some frame at least this often
CLEAR_RETRY_NS = 20_000_000
ESTOP_REPEATS = 3
# open() waits for this many STATEs: the rig clock's offset is the fastest of them, and the
# first STATE may queue behind CAPABILITIES.
STATES_AT_OPEN = 8
OFFSET_WINDOW_NS = 1_000_000_000
_READ_TIMEOUT_S = 0.02
_FEED_BYTES = 4096
# A frame is dropped (whole, counted) rather than queued behind this many frames' worth of
# bytes still waiting in the UART's transmit buffer: the rig wants the newest control, late
# ones are worth nothing, and a write must never wait on the line.
_TX_QUEUE_FRAMES = 4
_U16 = 1 << 16


class RigUnreachable(Exception):
    """No rig answered on the port (or the port cannot be opened); names the port."""


class RigMismatch(ConfigError):
    """The rig on the port is not the plant the configuration describes."""


def wire_ns(n_bytes: int, baud: int) -> int:
    """Time for `n_bytes` to cross a UART at `baud`, 8N1 (10 bit times a byte), in ns."""
    return n_bytes * BITS_PER_BYTE * 1_000_000_000 // baud


class RigClock:
    """Maps the rig's wrapping 32-bit microsecond clock onto the host's monotonic ns.

    `unwrap` turns each raw timestamp into a 64-bit count (differences modulo 2**32).
    `observe` takes a STATE's rig time and host arrival time and returns the host time at
    which the rig sampled it: rig time + offset - wire time, the offset being the smallest
    (arrival - rig time) seen in the current or the previous window.
    """

    def __init__(self, wire_time_ns: int, window_ns: int = OFFSET_WINDOW_NS) -> None:
        self.wire_time_ns = wire_time_ns
        self._window_ns = window_ns
        self._last_raw: int | None = None
        self._rig_us = 0
        self._window_start: int | None = None
        self._min_current: int | None = None
        self._min_previous: int | None = None

    def unwrap(self, raw_us: int) -> int:
        if self._last_raw is None:
            self._rig_us = raw_us
        else:
            self._rig_us += (raw_us - self._last_raw) % (1 << 32)
        self._last_raw = raw_us
        return self._rig_us

    @property
    def offset_ns(self) -> int | None:
        """Host arrival time minus rig time of the fastest recent frame."""
        candidates = [m for m in (self._min_current, self._min_previous) if m is not None]
        return min(candidates) if candidates else None

    def observe(self, rig_us: int, arrival_ns: int) -> int:
        if self._window_start is None or arrival_ns - self._window_start >= self._window_ns:
            self._window_start = arrival_ns
            self._min_previous, self._min_current = self._min_current, None
        delay = arrival_ns - rig_us * 1000
        if self._min_current is None or delay < self._min_current:
            self._min_current = delay
        return self.host_ns(rig_us)

    def host_ns(self, rig_us: int) -> int:
        """When the rig's clock read `rig_us` (unwrapped), on the host's clock."""
        offset = self.offset_ns
        if offset is None:
            raise RuntimeError("RigClock.host_ns before any observe()")
        return rig_us * 1000 + offset - self.wire_time_ns


@dataclass(frozen=True)
class _Sample:
    """One STATE as received: the rig's seq and time, and when it was sampled and read."""

    seq: int
    rig_us: int
    sample_ns: int
    arrival_ns: int
    values: np.ndarray


class SerialBackend:
    """A rig on `port` as a plant backend; see the module docstring.

    `model` is the plant the rig is (it gives the state names, the description and the
    force limit, lowered to the rig's `max_command`); it is never stepped. `open()` does
    the handshake; the plant loop then calls `align_start_ns`, `start`, `advance`,
    `apply`, and checks `fault`; `close()` sends ESTOP and releases the port.
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
        self.max_force_n = float(model.max_force_n)
        self.state = np.zeros(len(self.state_names))
        self.sim_time_ns = 0
        self.port = port
        self.baud = baud
        self.rate_hz = rate_hz
        self.period_ns = round(1e9 / rate_hz)
        self.latency = LatencyMonitor(SERIAL_FIGURES)
        self.capabilities: Capabilities | None = None
        self._layout = LAYOUTS.get(model.name)
        self._handshake_timeout_ns = handshake_timeout_ns
        self._silence_timeout_ns = silence_timeout_ns
        self._margin_ns = round(phase_margin * self.period_ns)
        self._log = log
        self._on_reader_start = on_reader_start
        self._clock = clock
        n = len(self.state_names)
        self.state_frame_bytes = frame_bytes(State(timestamp_us=0, values=(0.0,) * n))
        self.control_frame_bytes = frame_bytes(Control(command=0.0, state_seq=0))
        self._control_wire_ns = wire_ns(self.control_frame_bytes, baud)
        self._rig_clock = RigClock(wire_ns(self.state_frame_bytes, baud))
        self._ser: serial.Serial | None = None
        self._decoder = Decoder()
        self._encoder = Encoder()
        self._write_lock = threading.RLock()
        self._fault_lock = threading.Lock()
        self._fresh = threading.Condition()
        self._reader_thread: threading.Thread | None = None
        self._stop_reader = threading.Event()
        self._rejects_logged = RateLimiter(clock=clock)
        self._latest: _Sample | None = None
        self._published: _Sample | None = None
        self._fault: str | None = None
        self._fault_ns: int | None = None
        self._safe_output_ns: int | None = None
        self._rig_fault: dict[str, Any] | None = None
        self._version_problem: str | None = None
        self._rig_flags = Flags.NONE
        self._t0_ns: int | None = None
        self._first_tick = False
        self._clear_ns: int | None = None
        self._armed_seen = False
        self._closing = False
        self._force_n = 0.0
        self._control_since_tick = False
        self._last_valid_ns = 0
        self._last_tx_ns = 0
        self._in_error = False
        self._last_reject_ns = 0
        self.counters = dict.fromkeys((
            "frames_tx", "controls_tx", "bytes_tx", "bytes_rx", "tx_overflow_bytes", "states_rx",
            "stale_ticks", "late_states", "samples_skipped", "hold_refreshes", "heartbeats_tx",
            "clears_tx", "estops_tx", "resyncs", "unexpected_frames", "tx_dropped_frames",
            "tx_truncated_frames", "unanswered_capabilities"), 0)
        self._tx_queue_limit_bytes = _TX_QUEUE_FRAMES * max(self.state_frame_bytes,
                                                            self.control_frame_bytes)
        self._tx_cut = False  # the last frame went out in part: end it before the next

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_config(cls, config: Config, model: Any, log: Any = None,
                    on_reader_start: Callable[[], object] | None = None) -> SerialBackend:
        serial_config = config.serial
        return cls(model, serial_config.port, serial_config.baud, config.run.rate_hz,
                   handshake_timeout_ns=round(serial_config.handshake_timeout_ms * 1e6),
                   silence_timeout_ns=round(serial_config.silence_timeout_ms * 1e6),
                   phase_margin=serial_config.phase_margin, log=log,
                   on_reader_start=on_reader_start)

    def open(self) -> None:
        """Open the port, handshake, wait for the first STATE, start the reader thread.

        Raises `RigUnreachable` (no port, no answer) or `RigMismatch` (the rig is another
        plant, rate or protocol version than configured), both naming the port.
        """
        if self._layout is None:
            raise RigMismatch(f"plant.model {self.name!r} has no rig layout; known: "
                              f"{', '.join(LAYOUTS)}")
        try:
            self._ser = serial.Serial(self.port, self.baud, timeout=_READ_TIMEOUT_S,
                                      write_timeout=0, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise RigUnreachable(f"cannot open serial port {self.port}: {exc}") from None
        try:
            self._ser.reset_input_buffer()
            self._write(b"\x00")  # ends whatever partial frame the rig's receiver holds
            give_up = self._clock() + self._handshake_timeout_ns
            while True:
                self._handshake(give_up)
                self._check_capabilities()
                if self._wait_first_state(give_up):
                    break
                # CAPABILITIES but no STATE: it was not the answer to a HELLO (a rig that
                # booted while our HELLOs went unheard sends one unasked). Say HELLO again.
                self.counters["unanswered_capabilities"] += 1
                self.capabilities = None
        except BaseException:
            self._ser.close()
            self._ser = None
            raise
        self._reader_thread = threading.Thread(target=self._reader, daemon=True,
                                               name=f"serial-reader {self.port}")
        self._reader_thread.start()

    def _handshake(self, give_up: int) -> None:
        hellos = 0
        while self.capabilities is None:
            now = self._clock()
            if now >= give_up:
                detail = self._version_problem or (
                    "is the rig powered, on this port and at this baud rate?")
                raise RigUnreachable(
                    f"no CAPABILITIES from the rig on {self.port} within "
                    f"{self._handshake_timeout_ns / 1e6:.0f} ms ({hellos} HELLOs sent at "
                    f"{self.baud} baud): {detail}")
            self._send(Hello())
            hellos += 1
            self._pump_until(min(give_up, now + HELLO_RETRY_NS),
                             lambda: self.capabilities is not None)

    def _check_capabilities(self) -> None:
        caps = self.capabilities
        assert caps is not None
        where = f"the rig on {self.port} (rig id {caps.rig_id:#010x})"
        if caps.state_layout != self._layout:
            expected = self._layout.name if self._layout is not None else 'no known layout'
            raise RigMismatch(f"{where} is a {caps.state_layout.name}, but plant.model is "
                              f"{self.name!r} ({expected})")
        if caps.state_encoding != StateEncoding.FLOAT32_SI:
            raise RigMismatch(f"{where} streams {caps.state_encoding.name}; this bridge reads "
                              "STATE frames (FLOAT32_SI) only")
        if caps.control_unit != ControlUnit.FORCE_N:
            raise RigMismatch(f"{where} takes commands in {caps.control_unit.name}; this bridge "
                              "sends forces (FORCE_N) only")
        if abs(caps.state_rate_hz - self.rate_hz) > 1e-9:
            raise RigMismatch(f"{where} streams at {caps.state_rate_hz} Hz, but run.rate_hz is "
                              f"{self.rate_hz:g}: set run.rate_hz to {caps.state_rate_hz}")
        if caps.max_command <= 0:
            raise RigMismatch(f"{where} reports max_command {caps.max_command}, must be > 0")
        self.max_force_n = min(self.max_force_n, caps.max_command)
        if self._log is not None and caps.watchdog_ms * 1e6 < 3 * self.period_ns:
            self._log.warning("rig watchdog shorter than 3 periods", port=self.port,
                              watchdog_ms=caps.watchdog_ms, period_ms=self.period_ns / 1e6)

    def _wait_first_state(self, give_up: int) -> bool:
        """The rig's first STATEs after its CAPABILITIES: True once they came; False when
        none came within the wait but the handshake's time is not up (say HELLO again)."""
        timeout_ns = max(self._silence_timeout_ns, 20 * self.period_ns)
        self._pump_until(self._clock() + timeout_ns,
                         lambda: self.counters["states_rx"] >= STATES_AT_OPEN
                         or self._fault is not None)
        if self._fault is not None:
            raise RigUnreachable(self._fault)
        if self._latest is None:
            if self._clock() < give_up:
                return False
            raise RigUnreachable(
                f"the rig on {self.port} sent CAPABILITIES but no STATE within "
                f"{timeout_ns / 1e6:.0f} ms of it, until the handshake's "
                f"{self._handshake_timeout_ns / 1e6:.0f} ms were up "
                f"({self.counters['unanswered_capabilities']} CAPABILITIES went unanswered "
                "by STATEs): is the rig's firmware streaming after HELLO?")
        self.state[:] = self._latest.values
        self._published = self._latest
        return True

    def _pump_until(self, deadline_ns: int, done: Callable[[], bool]) -> None:
        """Read and handle frames on this thread until `done()` or the deadline."""
        assert self._ser is not None
        while not done() and self._clock() < deadline_ns:
            try:
                data = self._read_chunk()
            except (serial.SerialException, OSError) as exc:
                raise RigUnreachable(f"serial port {self.port} failed: {exc}") from None
            if data:
                self._receive(data, self._clock())

    # ----------------------------------------------------------------- backend interface
    def describe(self) -> dict[str, Any]:
        d = dict(self.model.describe())
        d["max_force_n"] = self.max_force_n
        d["backend"] = "serial"
        d["rig"] = self._capabilities_dict()
        return d

    @property
    def fault(self) -> str | None:
        """Why the rig can no longer be trusted (silent, unplugged, FAULT), naming the port;
        None while the link is healthy. The plant loop checks it every tick."""
        return self._fault

    def align_start_ns(self, t_ns: int) -> int:
        """The first time >= `t_ns` that lies `phase_margin` of a period after a STATE is due
        to arrive: the plant's first tick, so that each tick finds a fresh state."""
        latest = self._latest
        if latest is None or self._rig_clock.offset_ns is None:
            return t_ns
        due = self._rig_clock.host_ns(latest.rig_us) + self._rig_clock.wire_time_ns
        tick = due + self._margin_ns
        if tick < t_ns:
            tick += math.ceil((t_ns - tick) / self.period_ns) * self.period_ns
        return tick

    def start(self, t_ns: int) -> None:
        """Arm the rig: CLEAR now (repeated until its flags show MOTOR_ENABLED)."""
        self._t0_ns = t_ns
        self._first_tick = True  # publishes the newest state: the ticks follow its arrival
        self._clear_ns = self._clock()
        self._send(Clear())
        self.counters["clears_tx"] += 1

    def apply(self, force_n: float, t_ns: int) -> None:
        self._force_n = force_n
        if self._fault is not None:
            if self._safe_output_ns is None:
                self._safe_output_ns = t_ns
            return
        if self._t0_ns is None:
            return
        published = self._published
        if self._send_control(force_n) and published is not None:
            self.latency.record_ns("serial_round_trip", self._last_tx_ns + self._control_wire_ns
                                   - published.sample_ns)
        self._control_since_tick = True

    def advance(self, t_ns: int) -> np.ndarray:
        now = self._clock()
        self._check_link(now)
        latest = self._latest
        published = self._published
        assert latest is not None and published is not None
        if self._first_tick:  # states from before the run are neither stale nor skipped
            self._first_tick = False
            published = self._published = latest
            self.state[:] = latest.values
        elif latest.seq == published.seq and self._fault is None:
            latest = self._wait_fresh(published.seq, t_ns + self._margin_ns)
        if latest.seq != published.seq:
            self.counters["samples_skipped"] += (latest.seq - published.seq - 1) % _U16
            self.state[:] = latest.values
            self._published = latest
        self.latency.record_ns("rig_age", self._clock() - latest.sample_ns)
        if self._t0_ns is not None:
            self.sim_time_ns = max(0, t_ns - self._t0_ns)
            if self._fault is None:
                if not self._control_since_tick and self._send_control(self._force_n):
                    self.counters["hold_refreshes"] += 1
                if not self._armed_seen and now - self._last_clear_ns() >= CLEAR_RETRY_NS:
                    self._send(Clear())
                    self.counters["clears_tx"] += 1
        self._control_since_tick = False
        return self.state

    def _last_clear_ns(self) -> int:
        return self._clear_ns if self._clear_ns is not None else 0

    def _wait_fresh(self, seq: int, deadline_ns: int) -> _Sample:
        """The newest sample, waiting until `deadline_ns` for one newer than `seq`."""
        with self._fresh:
            while True:
                latest = self._latest
                assert latest is not None
                remaining = deadline_ns - self._clock()
                if latest.seq != seq or self._fault is not None:
                    if latest.seq != seq:
                        self.counters["late_states"] += 1
                    return latest
                if remaining <= 0 or self._last_reject_ns > latest.arrival_ns:
                    # too late, or the frame it waits for arrived damaged: do not wait for it
                    self.counters["stale_ticks"] += 1
                    return latest
                self._fresh.wait(remaining / 1e9)

    def close(self) -> None:
        """ESTOP the rig (three times) if it was armed, stop the reader, release the port."""
        self._closing = True
        if self._ser is None:
            return
        if self._t0_ns is not None and self._fault is None:
            self._estop()
        self._stop_reader.set()
        with contextlib.suppress(Exception):
            self._ser.cancel_read()
        if self._reader_thread is not None:
            self._reader_thread.join(timeout=1.0)
        with contextlib.suppress(Exception):
            self._ser.close()

    # ----------------------------------------------------------------- sending
    def _write(self, data: bytes) -> bool:
        """Write one whole frame without waiting, or drop it whole; True if it went out.

        Dropped (counted in `tx_dropped_frames`) when the transmit buffer already holds
        `_TX_QUEUE_FRAMES` frames' worth of bytes (`out_waiting`, a real UART) or takes none
        (EAGAIN: a pseudo-terminal's buffer is full). If the kernel takes only part of it
        (`tx_truncated_frames`), the next write starts with a delimiter, so the rig rejects
        the cut frame alone and the next one arrives whole. (pyserial's own write with
        write_timeout=0 spins on EAGAIN inside the write lock.) False, and a fault, if the
        port is gone."""
        assert self._ser is not None
        if self._tx_cut:
            data = b"\x00" + data
        try:
            if self._ser.out_waiting + len(data) > self._tx_queue_limit_bytes:
                written = 0
            else:
                written = os.write(self._ser.fileno(), data)
        except BlockingIOError:
            written = 0
        except (serial.SerialException, OSError) as exc:
            self._set_fault(f"rig on {self.port} unplugged or gone: write failed: {exc}",
                            self._clock(), estop=False)
            return False
        if written == 0:
            self.counters["tx_dropped_frames"] += 1
            self.counters["tx_overflow_bytes"] += len(data)
            return False
        self._tx_cut = written < len(data)
        self._last_tx_ns = self._clock()
        self.counters["bytes_tx"] += written
        if self._tx_cut:
            self.counters["tx_truncated_frames"] += 1
            self.counters["tx_overflow_bytes"] += len(data) - written
            return False
        return True

    def _send(self, message: Message) -> bool:
        with self._write_lock:
            frame = self._encoder.encode(message)
            if not self._write(frame):
                return False
            self.counters["frames_tx"] += 1
            return True

    def _send_control(self, force_n: float) -> bool:
        published = self._published
        seq = published.seq if published is not None else 0
        if not self._send(Control(command=force_n, state_seq=seq)):
            return False
        self.counters["controls_tx"] += 1
        return True

    def _estop(self) -> None:
        for _ in range(ESTOP_REPEATS):  # each, even if one was dropped on a full line
            if self._send(Estop()):
                self.counters["estops_tx"] += 1

    # ----------------------------------------------------------------- receiving
    def _read_chunk(self) -> bytes:
        """Block up to the read timeout for a byte, then take everything waiting."""
        assert self._ser is not None
        first: bytes = self._ser.read(1)
        if not first:
            return b""
        waiting = self._ser.in_waiting
        return first + self._ser.read(waiting) if waiting else first

    def _reader(self) -> None:
        """The reader thread. If it dies of anything, the plant goes safe saying why: a run
        must never go on with nobody reading the rig."""
        try:
            self._read_until_stopped()
        except Exception as exc:
            if self._log is not None:  # with its traceback
                self._log.exception("serial reader thread died", port=self.port)
            self._set_fault(f"serial reader of the rig on {self.port} died: "
                            f"{type(exc).__name__}: {exc}", self._clock())

    def _read_until_stopped(self) -> None:
        if self._on_reader_start is not None:
            self._on_reader_start()
        while not self._stop_reader.is_set():
            try:
                data = self._read_chunk()
            except (serial.SerialException, OSError, TypeError) as exc:
                # TypeError: pyserial reading a port closed under it
                if not self._stop_reader.is_set():
                    self._set_fault(f"rig on {self.port} unplugged or gone: read failed: {exc}",
                                    self._clock(), estop=False)
                return
            now = self._clock()
            if data:
                self._receive(data, now)
            self._check_link(now)
            if (now - self._last_tx_ns >= LIVENESS_NS and self._fault is None
                    and self._send(Heartbeat(timestamp_us=(now // 1000) & 0xFFFFFFFF))):
                self.counters["heartbeats_tx"] += 1

    def _receive(self, data: bytes, t_ns: int) -> None:
        self.counters["bytes_rx"] += len(data)
        for start in range(0, len(data), _FEED_BYTES):
            self._decoder.feed(data[start:start + _FEED_BYTES])
            for event in self._decoder:
                if isinstance(event, Frame):
                    self._on_frame(event, t_ns)
                elif isinstance(event, FrameRejected):
                    self._on_rejected(event, t_ns)
                # SequenceGap, DuplicateFrame, SequenceReset: counted by the decoder

    def _on_rejected(self, event: FrameRejected, t_ns: int) -> None:
        self._in_error = True
        with self._fresh:
            self._last_reject_ns = t_ns
            self._fresh.notify_all()
        if event.reason is RejectReason.VERSION and self.capabilities is None:
            self._version_problem = f"the rig speaks another protocol version: {event.detail}"
        if self._log is not None and self._rejects_logged.allow(event.reason):
            self._log.warning("serial frame rejected", port=self.port,
                              reason=event.reason.value, detail=event.detail,
                              suppressed=self._rejects_logged.take_suppressed(event.reason))

    def _on_frame(self, frame: Frame, t_ns: int) -> None:
        if self._in_error:
            self._in_error = False
            self.counters["resyncs"] += 1
        self._last_valid_ns = t_ns
        message = frame.message
        if isinstance(message, State):
            self._on_state(frame.seq, message, t_ns)
        elif isinstance(message, Fault):
            self._on_fault(message, t_ns)
        elif isinstance(message, Capabilities):
            if self._clear_ns is not None and not self._closing:
                self._set_fault(f"rig on {self.port} restarted mid-run (CAPABILITIES again)",
                                t_ns)
            self.capabilities = message
        elif not isinstance(message, Heartbeat):
            self.counters["unexpected_frames"] += 1
        self._on_flags(frame.flags, t_ns)

    def _on_state(self, seq: int, message: State, t_ns: int) -> None:
        if len(message.values) != len(self.state_names):
            self.counters["unexpected_frames"] += 1
            return
        rig_us = self._rig_clock.unwrap(message.timestamp_us)
        sample_ns = self._rig_clock.observe(rig_us, t_ns)
        if self._t0_ns is not None:  # the run's figures; before it the host is busy starting
            self.latency.record_ns("rig_to_plant", t_ns - sample_ns)
        sample = _Sample(seq, rig_us, sample_ns, t_ns, np.array(message.values))
        with self._fresh:
            self._latest = sample
            self._fresh.notify_all()
        self.counters["states_rx"] += 1

    def _on_fault(self, message: Fault, t_ns: int) -> None:
        code = message.code
        name = code.name if isinstance(code, FaultCode) else f"0x{code:02X}"
        self._rig_fault = {"code": int(code), "name": name, "detail": message.detail,
                           "t_ns": t_ns}
        if self._clear_ns is not None and not self._closing:
            self._set_fault(f"rig on {self.port} reported FAULT {name} (detail "
                            f"{message.detail})", t_ns)

    def _on_flags(self, flags: Flags, t_ns: int) -> None:
        self._rig_flags = flags
        if flags & Flags.MOTOR_ENABLED:
            if self._clear_ns is not None:
                self._armed_seen = True
        elif self._armed_seen and not self._closing:
            # The FAULT frame may have been lost on the line; the flags say it all the same.
            self._set_fault(f"rig on {self.port} disarmed itself (flags {flags!r})", t_ns)

    def _check_link(self, now: int) -> None:
        if self._fault is not None or self._closing:
            return
        silent_ns = now - self._last_valid_ns
        if self._last_valid_ns and silent_ns > self._silence_timeout_ns:
            self._set_fault(f"rig on {self.port} silent: no valid frame for "
                            f"{silent_ns / 1e6:.0f} ms (serial.silence_timeout_ms "
                            f"{self._silence_timeout_ns / 1e6:g})", now)
        elif (self._clear_ns is not None and not self._armed_seen
              and now - self._clear_ns > self._silence_timeout_ns):
            last = self._rig_fault["name"] if self._rig_fault else "none reported"
            self._set_fault(f"rig on {self.port} did not arm within "
                            f"{self._silence_timeout_ns / 1e6:g} ms of CLEAR (flags "
                            f"{self._rig_flags!r}, last FAULT: {last})", now)

    def _set_fault(self, reason: str, t_ns: int, *, estop: bool = True) -> None:
        with self._fault_lock:
            if self._fault is not None:
                return
            self._fault = reason
            self._fault_ns = t_ns
        if self._log is not None:
            self._log.error("rig fault: plant going safe", port=self.port, reason=reason)
        with self._fresh:
            self._fresh.notify_all()
        if estop:  # the rig may still listen: make sure it is off
            self._estop()

    # ----------------------------------------------------------------- report
    def _capabilities_dict(self) -> dict[str, Any] | None:
        caps = self.capabilities
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

    def report(self) -> dict[str, Any]:
        """The `serial` section of plant.json."""
        st = self._decoder.statistics()
        ceiling_hz = self.baud / BITS_PER_BYTE / max(self.state_frame_bytes,
                                                     self.control_frame_bytes)
        return {
            "port": self.port,
            "baud": self.baud,
            "frames_rx": st.frames_ok,
            "frames_tx": self.counters["frames_tx"],
            "crc_errors": st.crc_errors,
            "framing_errors": st.too_long_errors + st.cobs_errors + st.length_errors,
            "seq_gaps": st.sequence_gaps,
            "resyncs": self.counters["resyncs"],
            "frames_missed": st.frames_missed,
            "duplicates": st.duplicates,
            "sequence_resets": st.sequence_resets,
            "other_rejects": st.version_errors + st.type_errors + st.value_errors,
            "state_frame_bytes": self.state_frame_bytes,
            "control_frame_bytes": self.control_frame_bytes,
            "max_rate_hz": ceiling_hz,
            "link_utilisation": self.rate_hz / ceiling_hz,
            **{k: v for k, v in self.counters.items() if k != "frames_tx"},
            "rig": self._capabilities_dict(),
            "rig_fault": self._rig_fault,
            "fault": self._fault,
            "fault_detected_ns": self._fault_ns,
            "safe_output_ns": self._safe_output_ns,
        }

    def latency_report(self) -> tuple[dict[str, Any], dict[str, str]]:
        """Percentiles (us) of the serial figures, and their encoded histograms."""
        stats = self.latency.statistics().to_dict()
        return stats["figures"], self.latency.encode()["histograms"]
