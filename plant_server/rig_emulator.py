"""Emulated rig: the firmware of firmware_protocol/PROTOCOL.md (version 2) on a pseudo-terminal.

`python -m plant_server.rig_emulator --config X` (or `hil rig-emulator ...`) opens a
pseudo-terminal, prints the path of its slave side (and points `--link` at it), and behaves
on it as a rig's microcontroller would (PROTOCOL.md sections 9 and 10):

- power-up: SAFE with FAULT POWER_ON latched; one CAPABILITIES (nonce 0), then a HEARTBEAT
  whenever it has sent nothing for 100 ms;
- HELLO: disarm (always), answer CAPABILITIES echoing its nonce, stream STATE at
  `run.rate_hz` from then on; a HELLO of another protocol version gets CAPABILITIES
  (nonce 0) in this one;
- CLEAR: arm, unless a limit switch is still pressed (then FAULT LIMIT_SWITCH again). The
  physics starts at the first CLEAR: until then the pendulum is held at
  `plant.initial_state`, as a hand holds it before letting go;
- CONTROL: one command per input, each saturated within its input's limits, applied from
  the moment its last byte arrived; reloads the watchdog. Ignored while SAFE, and refused
  when its `state_seq` is older than `watchdog_ms` worth of STATE frames. One with another
  number of commands is never applied: counted, and while ARMED FAULT CONTROL_COUNT;
- watchdog: no valid CONTROL for `watchdog_ms` while ARMED: motor off, FAULT WATCHDOG,
  latched until CLEAR. HEARTBEAT never feeds it;
- ESTOP, even with a repeated seq: motor off, FAULT ESTOP, ESTOP_LATCHED until CLEAR;
- limit switches at +-`track_limit_m` (the pendulum layouts, whose state 0 is the cart):
  FAULT LIMIT_SWITCH.

The rig is the plant model of `plant.model`, with that model's inputs and their limits
(CAPABILITIES declares them): the double pendulum and the cart-pole as their layouts, any
other model (the two-input 2-DOF `helicopter`, a lab's own) as layout DECLARED, its states
named by the host's model. The model runs in real time, integrated piecewise between control
arrivals (`SimBackend`), with the state sampled at each tick of the rig's own clock.

Pacing. A UART at `serial.baud` moves baud/10 bytes a second each way. Each frame the rig
sends is written to the pseudo-terminal when its last byte would have left the wire (a
frame waits for the one before it), and each frame received is acted on only when its last
byte would have arrived. So transmission delays are those of a real link at that baud.

Fault knobs (`rig_emulator` in the config; seeded, so a run repeats): `corrupt_byte_rate`
(each byte, each way, XORed with a random non-zero value), `drop_frame_rate` (each frame,
each way, lost), `added_latency_ms` (each way, like a USB adapter's latency timer), and
`unplug_after_s` (seconds after the first CLEAR: close the pseudo-terminal and remove the
link, as pulling the USB cable does) and `boot_ms` (the rig boots this long after it starts,
as a board that resets when its port is opened: it hears nothing meanwhile, counted as
`rx_while_booting`, then sends its power-up CAPABILITIES unasked).

Stalls. A microcontroller never stops, but this process can: a loaded machine or a virtual
machine's host may not run it for tens of milliseconds. Bytes the host sent meanwhile wait
in the pseudo-terminal, so a firmware that would have received them in time cannot see
them. When the loop wakes more than `STALL_NS` after it asked to, the stall is counted
(`stalls`, `longest_stall_ms` in rig.json) and the watchdog's deadline moves back by its
length: the emulator's own stall is not the host's silence. A silent host still trips it.

On exit it writes `rig.json` into `--out`: its counters, faults, stalls, and the latency it
measures on its own clock from sampling a state to applying the CONTROL that answers it.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import select
import sys
import time
import tty
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from firmware_protocol import (
    MAX_STATE_VALUES,
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
    MessageType,
    RejectReason,
    State,
    StateEncoding,
    StateLayout,
)
from firmware_protocol.cobs import CobsError, cobs_decode
from hil.app import logs
from hil.app.process import EXIT_FAULT, EXIT_OK, EXIT_USAGE, StopFlag, write_json
from hil.config import Config, ConfigError, build_plant_model, load_config
from hil.runtime import rt
from hil.runtime.latency import LatencyMonitor
from hil.runtime.schedule import Schedule
from plant_server.backends.serial import BITS_PER_BYTE, LAYOUTS, LIVENESS_NS
from plant_server.backends.sim import SimBackend

FIRMWARE_VERSION = (2, 0, 0)
RIG_FIGURES = ("sample_to_actuation", "tick_lateness")
_SEQ = 1 << 16
_READ_BYTES = 4096
_MAX_IDLE_NS = 50_000_000
STALL_NS = 5_000_000  # the loop woke this much later than it asked: the emulator stalled


@dataclass(frozen=True)
class RigSettings:
    """What the emulated rig is and how its link misbehaves; see the module docstring."""

    rate_hz: int
    baud: int
    watchdog_ms: int = 50
    rig_id: int = 0x48494C31
    track_limit_m: float = 1.0
    clock_start_us: int = 0
    seed: int = 0
    corrupt_byte_rate: float = 0.0
    drop_frame_rate: float = 0.0
    added_latency_ns: int = 0
    unplug_after_ns: int | None = None
    boot_ns: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.rate_hz <= 65535:
            raise ValueError(f"rate_hz must be a whole number of Hz in 1..65535 (a u16 in "
                             f"CAPABILITIES), got {self.rate_hz}")
        if self.baud <= 0:
            raise ValueError(f"baud must be > 0, got {self.baud}")
        for name in ("corrupt_byte_rate", "drop_frame_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")

    @classmethod
    def from_config(cls, config: Config) -> RigSettings:
        rate = config.run.rate_hz
        if rate != round(rate):
            raise ConfigError(f"run.rate_hz: the rig streams at a whole number of Hz (a u16 in "
                              f"CAPABILITIES), got {rate}")
        rc = config.rig_emulator
        return cls(
            rate_hz=round(rate), baud=config.serial.baud, watchdog_ms=rc.watchdog_ms,
            rig_id=rc.rig_id, track_limit_m=rc.track_limit_m, clock_start_us=rc.clock_start_us,
            seed=rc.seed, corrupt_byte_rate=rc.corrupt_byte_rate,
            drop_frame_rate=rc.drop_frame_rate,
            added_latency_ns=round(rc.added_latency_ms * 1e6),
            unplug_after_ns=None if rc.unplug_after_s is None else round(rc.unplug_after_s * 1e9),
            boot_ns=round(rc.boot_ms * 1e6),
        )


class RigFirmware:
    """The rig's protocol logic and physics, sans-I/O: bytes and times in, frames out.

    `receive(data, t_ns)` handles bytes that arrived at `t_ns`; `tick(t_ns)` samples and
    sends a STATE; `check_watchdog(now)` trips it; `take_outgoing()` returns the frames to
    put on the wire, in order.
    """

    def __init__(self, model: Any, initial_state: Any, settings: RigSettings,
                 boot_ns: int) -> None:
        self.settings = settings
        self.period_ns = round(1e9 / settings.rate_hz)
        self.plant = SimBackend(model, np.asarray(initial_state, dtype=np.float64),
                                self.period_ns)
        inputs = model.inputs
        self._low, self._high = np.array(inputs.low), np.array(inputs.high)
        self.layout = LAYOUTS.get(model.name, StateLayout.DECLARED)
        self.capabilities = Capabilities(
            rig_id=settings.rig_id, firmware_version=FIRMWARE_VERSION,
            state_layout=self.layout, state_encoding=StateEncoding.FLOAT32_SI,
            control_unit=ControlUnit.PHYSICAL, state_rate_hz=settings.rate_hz,
            watchdog_ms=settings.watchdog_ms, angle_counts_per_rev=0, cart_counts_per_m=0,
            nonce=0, input_limits=tuple(zip(inputs.low, inputs.high, strict=True)))
        self.boot_ns = boot_ns
        self.encoder = Encoder()
        self.decoder = Decoder()
        self.latency = LatencyMonitor(RIG_FIGURES)
        self.armed = False
        self.estop_latched = False
        self.latched_code: FaultCode | None = FaultCode.POWER_ON
        self.streaming_since_ns: int | None = None
        self.first_armed_ns: int | None = None
        self.watchdog_deadline_ns: int | None = None
        self.last_tx_ns = boot_ns
        self.faults: list[dict[str, Any]] = []
        self.stalls = 0
        self.longest_stall_ns = 0
        self.longest_stall_end_ns: int | None = None
        self._physics = False
        self._last_state_seq: int | None = None
        self._stale_after = max(1, settings.watchdog_ms * settings.rate_hz // 1000)
        self._sample_ns = np.zeros(_SEQ, dtype=np.int64)
        self._answered = np.ones(_SEQ, dtype=bool)
        self._outgoing: list[bytes] = []
        self.counters = dict.fromkeys((
            "states_tx", "samples_armed", "samples_answered", "answered_in_period",
            "controls_applied",
            "controls_ignored_safe", "controls_stale", "controls_wrong_count", "clears",
            "estops", "hellos", "other_version_hellos", "watchdog_trips", "heartbeats_tx",
            "unexpected_frames"), 0)

    # ----------------------------------------------------------------- helpers
    def flags(self) -> Flags:
        flags = Flags.MOTOR_ENABLED if self.armed else Flags.FAULT_LATCHED
        return flags | Flags.ESTOP_LATCHED if self.estop_latched else flags

    def timestamp_us(self, t_ns: int) -> int:
        """The rig's free-running microsecond clock, wrapping at 2**32."""
        return (self.settings.clock_start_us + (t_ns - self.boot_ns) // 1000) & 0xFFFFFFFF

    def _send(self, message: Message, t_ns: int) -> None:
        self._outgoing.append(self.encoder.encode(message, flags=self.flags()))
        self.last_tx_ns = t_ns

    def take_outgoing(self) -> list[bytes]:
        out, self._outgoing = self._outgoing, []
        return out

    def _motor_off(self, t_ns: int) -> None:
        if self._physics:
            self.plant.apply([0.0] * len(self._low), t_ns)

    def _answer(self, nonce: int, t_ns: int) -> None:
        """CAPABILITIES answering the HELLO with `nonce` (0: unasked)."""
        self._send(replace(self.capabilities, nonce=nonce), t_ns)

    def _enter_safe(self, t_ns: int, code: FaultCode, detail: int = 0,
                    estop: bool = False) -> None:
        self.armed = False
        self.watchdog_deadline_ns = None
        self.latched_code = code
        self.estop_latched = self.estop_latched or estop
        self._motor_off(t_ns)
        self.faults.append({"t_ns": t_ns, "code": code.name, "detail": detail})
        self._send(Fault(code=code, detail=detail), t_ns)

    def _limit_switch(self) -> int | None:
        """0 at the -x end, 1 at the +x end, None inside the track (or without a track)."""
        if self.layout is StateLayout.DECLARED:
            return None
        x = float(self.plant.state[0])
        if x <= -self.settings.track_limit_m:
            return 0
        if x >= self.settings.track_limit_m:
            return 1
        return None

    # ----------------------------------------------------------------- events
    def power_up(self, t_ns: int) -> None:
        self._answer(0, t_ns)

    def heartbeat_due(self, now: int) -> bool:
        return now - self.last_tx_ns >= LIVENESS_NS

    def heartbeat(self, t_ns: int) -> None:
        self._send(Heartbeat(timestamp_us=self.timestamp_us(t_ns)), t_ns)
        self.counters["heartbeats_tx"] += 1

    def receive(self, data: bytes, t_ns: int) -> None:
        self.decoder.feed(data)
        for event in self.decoder:
            if isinstance(event, Frame):
                self._on_frame(event.message, t_ns)
            elif isinstance(event, FrameRejected) and event.reason is RejectReason.VERSION:
                self._on_other_version(event.data, t_ns)

    def _on_other_version(self, encoded: bytes, t_ns: int) -> None:
        # A HELLO in another version gets our CAPABILITIES, so the host can say which.
        try:
            body = cobs_decode(encoded)
        except CobsError:
            return
        if len(body) > 1 and body[1] == MessageType.HELLO:
            self.counters["other_version_hellos"] += 1
            self._answer(0, t_ns)  # its nonce cannot be read

    def _on_frame(self, message: Message, t_ns: int) -> None:
        if isinstance(message, Control):
            self._on_control(message, t_ns)
        elif isinstance(message, Hello):
            self.counters["hellos"] += 1
            self.armed = False  # a session always starts disarmed
            self.watchdog_deadline_ns = None
            self._motor_off(t_ns)
            self._answer(message.nonce, t_ns)
            if self.streaming_since_ns is None:
                self.streaming_since_ns = t_ns
        elif isinstance(message, Clear):
            self.counters["clears"] += 1
            self._on_clear(t_ns)
        elif isinstance(message, Estop):
            self.counters["estops"] += 1
            self._enter_safe(t_ns, FaultCode.ESTOP, 0, estop=True)
        elif not isinstance(message, Heartbeat):
            self.counters["unexpected_frames"] += 1

    def _on_clear(self, t_ns: int) -> None:
        if self.armed:
            return
        side = self._limit_switch()
        if side is not None:
            self._enter_safe(t_ns, FaultCode.LIMIT_SWITCH, side)
            return
        self.armed = True
        self.latched_code = None
        self.estop_latched = False
        if not self._physics:
            self.plant.start(t_ns)
            self._physics = True
            self.first_armed_ns = t_ns
        self.plant.apply([0.0] * len(self._low), t_ns)
        self.watchdog_deadline_ns = t_ns + self.settings.watchdog_ms * 1_000_000

    def _on_control(self, message: Control, t_ns: int) -> None:
        count = len(message.commands)
        if count != len(self._low):  # another plant's host: never applied (PROTOCOL.md 10)
            self.counters["controls_wrong_count"] += 1
            if self.armed:
                self._enter_safe(t_ns, FaultCode.CONTROL_COUNT, count)
            return
        if not self.armed:
            self.counters["controls_ignored_safe"] += 1
            return
        last = self._last_state_seq
        if last is None or (last - message.state_seq) % _SEQ > self._stale_after:
            self.counters["controls_stale"] += 1
            return
        self.plant.apply(np.clip(message.commands, self._low, self._high).tolist(), t_ns)
        # A reload never moves the deadline earlier: a CONTROL read before a stall of this
        # process is handled after it, when its deadline may already lie past `stalled()`'s.
        self.watchdog_deadline_ns = max(self.watchdog_deadline_ns or 0,
                                        t_ns + self.settings.watchdog_ms * 1_000_000)
        self.counters["controls_applied"] += 1
        seq = message.state_seq
        if not self._answered[seq]:
            self._answered[seq] = True
            self.counters["samples_answered"] += 1
            delay = t_ns - int(self._sample_ns[seq])
            self.latency.record_ns("sample_to_actuation", delay)
            if delay < self.period_ns:
                self.counters["answered_in_period"] += 1

    def stalled(self, stall_ns: int, now: int) -> None:
        """This process did not run for `stall_ns` until `now`: not the host's fault."""
        self.stalls += 1
        if stall_ns > self.longest_stall_ns:
            self.longest_stall_ns = stall_ns
            self.longest_stall_end_ns = now
        if self.watchdog_deadline_ns is not None:
            self.watchdog_deadline_ns += stall_ns

    def check_watchdog(self, now: int) -> None:
        deadline = self.watchdog_deadline_ns
        if self.armed and deadline is not None and now >= deadline:
            self.counters["watchdog_trips"] += 1
            self._enter_safe(deadline, FaultCode.WATCHDOG, self.settings.watchdog_ms)

    def tick(self, t_ns: int) -> None:
        """Sample the plant at `t_ns` (the rig's tick) and send its STATE."""
        state = self.plant.advance(t_ns) if self._physics else self.plant.state
        if self.armed:
            side = self._limit_switch()
            if side is not None:
                self._enter_safe(t_ns, FaultCode.LIMIT_SWITCH, side)
        if not np.all(np.isfinite(state)):
            if self.armed:
                self._enter_safe(t_ns, FaultCode.ENCODER, 0)
            return
        seq = self.encoder.next_seq
        self._sample_ns[seq] = t_ns
        self._answered[seq] = not self.armed
        self._last_state_seq = seq
        self._send(State(timestamp_us=self.timestamp_us(t_ns), values=tuple(state.tolist())),
                   t_ns)
        self.counters["states_tx"] += 1
        if self.armed:
            self.counters["samples_armed"] += 1

    def report(self) -> dict[str, Any]:
        stats = self.decoder.statistics()
        return {
            "capabilities": {"rig_id": self.capabilities.rig_id,
                             "state_rate_hz": self.capabilities.state_rate_hz,
                             "watchdog_ms": self.capabilities.watchdog_ms,
                             "state_layout": self.capabilities.state_layout.name,
                             "input_limits": [list(p) for p in
                                              self.capabilities.input_limits]},
            "armed_at_exit": self.armed,
            "boot_ns": self.boot_ns,  # the rig clock reads clock_start_us then
            "first_armed_ns": self.first_armed_ns,
            "faults": self.faults,
            "counters": dict(self.counters),
            "stalls": self.stalls,
            "longest_stall_ms": self.longest_stall_ns / 1e6,
            "longest_stall_end_ns": self.longest_stall_end_ns,
            "streaming_since_ns": self.streaming_since_ns,
            "decoder": {"frames_ok": stats.frames_ok, "rejected": stats.rejected,
                        "crc_errors": stats.crc_errors, "sequence_gaps": stats.sequence_gaps,
                        "duplicates": stats.duplicates, "bytes_received": stats.bytes_received},
            "latency_us": self.latency.statistics().to_dict()["figures"],
            "final_state": self.plant.state.tolist(),
        }


class UartLine:
    """One direction of the emulated UART: pacing, and the seeded corruption and drops."""

    def __init__(self, baud: int, corrupt_rate: float, drop_rate: float,
                 rng: random.Random) -> None:
        self.byte_ns = BITS_PER_BYTE * 1e9 / baud
        self.free_at_ns = 0.0
        self._corrupt_rate = corrupt_rate
        self._drop_rate = drop_rate
        self._rng = rng
        self._clean_left = self._clean_run()
        self.corrupted_bytes = 0
        self.dropped_frames = 0

    def finish_ns(self, start_ns: int, n_bytes: int) -> int:
        """When the last of `n_bytes` handed to the line at `start_ns` is through."""
        self.free_at_ns = max(float(start_ns), self.free_at_ns) + n_bytes * self.byte_ns
        return math.ceil(self.free_at_ns)

    def drop(self) -> bool:
        if self._drop_rate and self._rng.random() < self._drop_rate:
            self.dropped_frames += 1
            return True
        return False

    def _clean_run(self) -> int:
        """How many bytes pass unharmed before the next corrupted one (geometric)."""
        p = self._corrupt_rate
        if p <= 0.0:
            return sys.maxsize
        if p >= 1.0:
            return 0
        return int(math.log(1.0 - self._rng.random()) / math.log(1.0 - p))

    def corrupt(self, data: bytes) -> bytes:
        if self._clean_left >= len(data):
            self._clean_left -= len(data)
            return data
        buf = bytearray(data)
        i = self._clean_left
        while i < len(buf):
            buf[i] ^= self._rng.randrange(1, 256)
            self.corrupted_bytes += 1
            i += 1 + self._clean_run()
        self._clean_left = i - len(buf)
        return bytes(buf)

    def statistics(self) -> dict[str, int]:
        return {"corrupted_bytes": self.corrupted_bytes, "dropped_frames": self.dropped_frames}


class RigEmulator:
    """Runs a `RigFirmware` on the master side of a pseudo-terminal, paced at the baud rate."""

    def __init__(self, firmware: RigFirmware, settings: RigSettings, log: Any = None,
                 clock: Callable[[], int] = time.monotonic_ns) -> None:
        self.fw = firmware
        self.settings = settings
        self.log = log
        self.clock = clock
        rng = random.Random(settings.seed)
        self.tx = UartLine(settings.baud, settings.corrupt_byte_rate, settings.drop_frame_rate,
                        random.Random(rng.getrandbits(64)))
        self.rx = UartLine(settings.baud, settings.corrupt_byte_rate, settings.drop_frame_rate,
                        random.Random(rng.getrandbits(64)))
        self.master: int | None = None
        self.slave: int | None = None
        self.path: str | None = None
        self.link: Path | None = None
        self.unplugged_at_ns: int | None = None
        self.schedule: Schedule | None = None
        self._tx_queue: deque[tuple[int, bytes]] = deque()
        self._rx_queue: deque[tuple[int, bytes]] = deque()
        self._rx_partial = bytearray()
        self._rx_partial_ns = 0
        self.counters = dict.fromkeys(("bytes_tx", "bytes_rx", "tx_overflow_bytes",
                                        "rx_while_booting"), 0)

    def open(self, link: Path | None = None) -> str:
        """Create the pseudo-terminal; point `link` (a symlink) at its slave side."""
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)  # a serial line carries bytes: no echo, no line editing
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)
        if link is not None:
            tmp = link.with_name(link.name + ".tmp")
            tmp.unlink(missing_ok=True)
            os.symlink(self.path, tmp)
            os.replace(tmp, link)
            self.link = link
        return self.path

    def close(self) -> None:
        for fd in (self.master, self.slave):
            if fd is not None:
                os.close(fd)
        self.master = self.slave = None
        if self.link is not None:
            self.link.unlink(missing_ok=True)

    def unplug(self, now: int) -> None:
        self.unplugged_at_ns = now
        self.close()
        if self.log is not None:
            self.log.warning("rig unplugged", path=self.path)

    # ----------------------------------------------------------------- the wire
    def _queue_outgoing(self, now: int) -> None:
        for frame in self.fw.take_outgoing():
            due = self.tx.finish_ns(now, len(frame)) + self.settings.added_latency_ns
            if not self.tx.drop():
                self._tx_queue.append((due, self.tx.corrupt(frame)))

    def _write_due(self, now: int) -> None:
        assert self.master is not None
        while self._tx_queue and self._tx_queue[0][0] <= now:
            _, data = self._tx_queue.popleft()
            try:
                written = os.write(self.master, data)
            except BlockingIOError:  # nobody reads the port: the bytes are lost, as on a UART
                written = 0
            self.counters["bytes_tx"] += written
            self.counters["tx_overflow_bytes"] += len(data) - written

    def _read(self) -> None:
        assert self.master is not None
        while True:
            try:
                data = os.read(self.master, _READ_BYTES)
            except (BlockingIOError, InterruptedError):
                return
            if not data:
                return
            # Stamped now, not with the loop's time: this process may have stalled since.
            now = self.clock()
            self.counters["bytes_rx"] += len(data)
            self._segment(self.rx.corrupt(data), now)

    def _segment(self, data: bytes, now: int) -> None:
        """Queue each delimited frame for when its last byte would have arrived."""
        if not self._rx_partial:
            self._rx_partial_ns = now
        start = 0
        while (end := data.find(0, start)) >= 0:
            self._rx_partial += data[start:end + 1]
            due = self.rx.finish_ns(self._rx_partial_ns, len(self._rx_partial))
            if not self.rx.drop():
                self._rx_queue.append((due + self.settings.added_latency_ns,
                                       bytes(self._rx_partial)))
            self._rx_partial = bytearray()
            self._rx_partial_ns = now
            start = end + 1
        self._rx_partial += data[start:]
        if len(self._rx_partial) > _READ_BYTES:  # garbage without a delimiter: pass it on
            due = self.rx.finish_ns(self._rx_partial_ns, len(self._rx_partial))
            self._rx_queue.append((due + self.settings.added_latency_ns, bytes(self._rx_partial)))
            self._rx_partial = bytearray()

    # ----------------------------------------------------------------- the loop
    def run(self, stop: Callable[[], bool]) -> str:
        """Serve until `stop()` or the unplug time; return why it ended."""
        fw = self.fw
        assert self.master is not None
        booted_at: int | None = self.clock() + self.settings.boot_ns  # then: power-up
        unplug_at: int | None = None
        wake = self.clock()
        while True:
            now = self.clock()
            if now - wake > STALL_NS:
                fw.stalled(now - wake, now)
            if stop():
                return "stopped"
            if (unplug_at is None and fw.first_armed_ns is not None
                    and self.settings.unplug_after_ns is not None):
                unplug_at = fw.first_armed_ns + self.settings.unplug_after_ns
            if unplug_at is not None and now >= unplug_at:
                self.unplug(now)
                return "unplugged"
            self._read()
            if booted_at is not None and now >= booted_at:
                fw.power_up(now)
                booted_at = None
            while self._rx_queue and self._rx_queue[0][0] <= now:
                t, data = self._rx_queue.popleft()
                if booted_at is None:
                    fw.receive(data, t)
                else:  # still booting: what the host says is not heard
                    self.counters["rx_while_booting"] += 1
            fw.check_watchdog(now)
            if self.schedule is None and fw.streaming_since_ns is not None:
                self.schedule = Schedule(fw.streaming_since_ns, fw.period_ns)
            sched = self.schedule
            if sched is not None and now >= sched.deadline_ns:
                fw.latency.record_ns("tick_lateness", now - sched.deadline_ns)
                fw.tick(sched.deadline_ns)
                sched.advance(now)
            if fw.heartbeat_due(now):
                fw.heartbeat(now)
            self._queue_outgoing(now)
            self._write_due(now)
            wake = now + _MAX_IDLE_NS
            for due in (sched.deadline_ns if sched else None,
                        self._tx_queue[0][0] if self._tx_queue else None,
                        self._rx_queue[0][0] if self._rx_queue else None,
                        fw.watchdog_deadline_ns if fw.armed else None, unplug_at, booted_at,
                        fw.last_tx_ns + LIVENESS_NS):
                if due is not None and due < wake:
                    wake = due
            timeout_ns = wake - self.clock()
            if timeout_ns > 0:
                select.select((self.master,), (), (), timeout_ns / 1e9)

    def report(self, end_reason: str) -> dict[str, Any]:
        sched = self.schedule
        return {
            "process": "rig_emulator",
            "end_reason": end_reason,
            "path": self.path,
            "link": str(self.link) if self.link else None,
            "settings": asdict(self.settings),
            "unplugged_at_ns": self.unplugged_at_ns,
            "ticks": sched.ticks if sched else 0,
            "ticks_skipped": sched.skipped if sched else 0,
            "line": {**self.counters, "tx": self.tx.statistics(), "rx": self.rx.statistics()},
            "firmware": self.fw.report(),
        }


def build(config: Config, log: Any = None, clock: Callable[[], int] = time.monotonic_ns
          ) -> RigEmulator:
    """The emulator `config` describes, its model compiled and warm."""
    model = build_plant_model(config)  # ConfigError naming what is wrong
    if len(model.state_names) > MAX_STATE_VALUES:
        raise ConfigError(f"plant.model {model.name!r} has {len(model.state_names)} states; a "
                          f"rig's STATE frame carries at most {MAX_STATE_VALUES} "
                          "(firmware_protocol/PROTOCOL.md section 5)")
    state = np.array(config.plant.initial_state, dtype=np.float64)
    model.step(state.copy(), np.zeros(model.inputs.n), 1e-3, np.empty_like(state))  # compile
    settings = RigSettings.from_config(config)
    return RigEmulator(RigFirmware(model, state, settings, clock()), settings, log, clock)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="hil rig-emulator", description=__doc__.splitlines()[0])
    p.add_argument("--config", help="YAML config: plant, run.rate_hz, serial.baud, rig_emulator")
    p.add_argument("--out", help="folder for rig.json and the log (default: none)")
    p.add_argument("--link", help="make this path a symlink to the pseudo-terminal")
    p.add_argument("--baud", type=int, help="serial.baud")
    p.add_argument("--rate", type=float, help="run.rate_hz: the STATE rate")
    for knob, kind in (("seed", int), ("corrupt_byte_rate", float), ("drop_frame_rate", float),
                       ("added_latency_ms", float), ("unplug_after_s", float),
                       ("boot_ms", float),
                       ("watchdog_ms", int), ("clock_start_us", int)):
        p.add_argument("--" + knob.replace("_", "-"), type=kind, dest=knob,
                       help=f"rig_emulator.{knob}")
    args = p.parse_args(argv)
    overrides: dict[str, Any] = {f"rig_emulator.{k}": v for k, v in vars(args).items()
                                 if k not in ("config", "out", "link", "baud", "rate")
                                 and v is not None}
    if args.baud is not None:
        overrides["serial.baud"] = args.baud
    if args.rate is not None:
        overrides["run.rate_hz"] = args.rate
    out = Path(args.out) if args.out else None
    try:
        config = load_config(args.config, overrides)
        log = logs.configure("rig_emulator", config.logging.level, out)
        emulator = build(config, log)
    except (ConfigError, ValueError) as exc:
        print(f"hil rig-emulator: {exc}", file=sys.stderr)
        return EXIT_USAGE
    stop = StopFlag()
    stop.install()
    realtime_config = config.realtime
    rt.apply_realtime(None, realtime_config.sched_fifo, realtime_config.sched_priority, False, log)
    reason = "crashed"
    code = EXIT_FAULT
    try:
        path = emulator.open(Path(args.link) if args.link else None)
        print(f"rig emulator on {path}" + (f" (link {args.link})" if args.link else ""),
              flush=True)
        log.info("rig emulator serving", path=path, baud=emulator.settings.baud,
                 rate_hz=emulator.settings.rate_hz)
        parent = os.getppid()  # `hil run` starts it in its own session: outlive it? no
        with rt.gc_quiet():
            reason = emulator.run(lambda: stop() or os.getppid() != parent)
        code = EXIT_OK
    finally:
        emulator.close()
        report = emulator.report(reason)
        if out is not None:
            write_json(out / "rig.json", report)
        log.info("rig emulator done", end_reason=reason,
                 states=report["firmware"]["counters"]["states_tx"],
                 corrupted=report["line"]["tx"]["corrupted_bytes"]
                 + report["line"]["rx"]["corrupted_bytes"])
    return code


if __name__ == "__main__":
    from hil.app.exits import leave

    leave(main())
