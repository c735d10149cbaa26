"""The serial bridge's receive side, without I/O: bytes from the rig in, what they say out.

`RigIntake.receive(data, t_ns)` decodes the bytes the reader thread read at `t_ns` and
keeps the newest STATE (as a `Sample` on the host's clock, through `RigClock`), the rig's
CAPABILITIES (only one that echoes `expected_nonce`, the handshake's), flags and last
FAULT, the protocol version of a rig that speaks another, and the counts. It returns,
rather than acts on, why the rig can no longer be trusted; `check_link` does the same for
a silent rig or one that will not arm. The plant loop's thread takes the newest sample
with `wait_fresh`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from firmware_protocol import (
    Capabilities,
    Decoder,
    Fault,
    FaultCode,
    Flags,
    Frame,
    FrameRejected,
    Heartbeat,
    RejectReason,
    State,
)
from hil.runtime.latency import LatencyMonitor
from hil.runtime.ratelimit import RateLimiter

OFFSET_WINDOW_NS = 1_000_000_000
_FEED_BYTES = 4096
INTAKE_COUNTERS = ("bytes_rx", "states_rx", "stale_ticks", "late_states", "resyncs",
                   "unexpected_frames", "stale_capabilities")


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
        """The rig's time as a 64-bit count of microseconds."""
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
        """Take a STATE sampled at `rig_us` and read at `arrival_ns`: when it was sampled,
        on the host's clock."""
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


@dataclass(frozen=True, slots=True)
class Sample:
    """One STATE as received: the rig's seq and time, and when it was sampled and read."""

    seq: int
    rig_us: int
    sample_ns: int
    arrival_ns: int
    values: np.ndarray


class RigIntake:
    """What the rig on `port` has said, from the bytes the bridge read (module docstring).

    `start(clear_ns)` marks the run: from then on the rig's FAULTs, a CAPABILITIES (a
    restart) and a disarm are reasons to stop, and each STATE's wire leg is recorded in
    `latency` (`rig_to_plant`). `closing` (set by the bridge) ends that: a rig told to stop
    is expected to stop. The reader thread calls `receive` and `check_link`; the plant
    loop's thread calls `wait_fresh`; `fault_latched` releases it for good (a fault).
    """

    def __init__(self, port: str, n_states: int, rig_clock: RigClock, latency: LatencyMonitor,
                 silence_timeout_ns: int, *, log: Any = None,
                 clock: Callable[[], int]) -> None:
        self.port = port
        self.rig_clock = rig_clock
        self.decoder = Decoder()
        self.counters = dict.fromkeys(INTAKE_COUNTERS, 0)
        self.latest: Sample | None = None  # the newest STATE
        self.capabilities: Capabilities | None = None
        self.expected_nonce: int | None = None  # the handshake's HELLO nonce
        self.version_problem: str | None = None  # a frame in another protocol version
        self.peer_version: int | None = None  # ... and that version, before CAPABILITIES
        self.mismatched_state_count: int | None = None  # a STATE of another size
        self.flags = Flags.NONE  # the rig's, as of its last frame
        self.rig_fault: dict[str, Any] | None = None  # its last FAULT
        self.armed_seen = False  # MOTOR_ENABLED since the run's CLEAR
        self.clear_ns: int | None = None  # the run's first CLEAR
        self.closing = False
        self._n_states = n_states
        self._latency = latency
        self._silence_timeout_ns = silence_timeout_ns
        self._log = log
        self._clock = clock
        self._rejects_logged = RateLimiter(clock=clock)
        self._fresh = threading.Condition()
        self._aborted = False
        self._last_reject_ns = 0
        self._last_valid_ns = 0
        self._in_error = False

    def start(self, clear_ns: int) -> None:
        """The run starts, with the rig told CLEAR at `clear_ns`."""
        self.clear_ns = clear_ns

    # ----------------------------------------------------------------- reader thread
    def receive(self, data: bytes, t_ns: int) -> str | None:
        """Decode `data`, read at `t_ns`. Returns why the rig can no longer be trusted (the
        first reason these bytes gave: a FAULT, a restart, a disarm), or None."""
        self.counters["bytes_rx"] += len(data)
        fault = None
        for start in range(0, len(data), _FEED_BYTES):
            self.decoder.feed(data[start:start + _FEED_BYTES])
            for event in self.decoder:
                if isinstance(event, Frame):
                    reason = self._on_frame(event, t_ns)
                    fault = fault or reason
                elif isinstance(event, FrameRejected):
                    self._on_rejected(event, t_ns)
                # SequenceGap, DuplicateFrame, SequenceReset: counted by the decoder
        return fault

    def check_link(self, now: int) -> str | None:
        """Why the link is no longer trusted at `now` (no valid frame for the silence
        timeout; not armed within it of the CLEAR), or None; None once the bridge closes or
        latched a fault (`fault_latched`)."""
        if self.closing or self._aborted:
            return None
        silent_ns = now - self._last_valid_ns
        timeout_ms = self._silence_timeout_ns / 1e6
        if self._last_valid_ns and silent_ns > self._silence_timeout_ns:
            return (f"rig on {self.port} silent: no valid frame for {silent_ns / 1e6:.0f} ms "
                    f"(serial.silence_timeout_ms {timeout_ms:g})")
        if (self.clear_ns is not None and not self.armed_seen
                and now - self.clear_ns > self._silence_timeout_ns):
            last = self.rig_fault["name"] if self.rig_fault else "none reported"
            return (f"rig on {self.port} did not arm within {timeout_ms:g} ms of CLEAR (flags "
                    f"{self.flags!r}, last FAULT: {last})")
        return None

    def _on_rejected(self, event: FrameRejected, t_ns: int) -> None:
        self._in_error = True
        with self._fresh:
            self._last_reject_ns = t_ns
            self._fresh.notify_all()
        if event.reason is RejectReason.VERSION and self.capabilities is None:
            self.version_problem = f"the rig speaks another protocol version: {event.detail}"
            self.peer_version = event.peer_version
        if self._log is not None and self._rejects_logged.allow(event.reason):
            self._log.warning("serial frame rejected", port=self.port,
                              reason=event.reason.value, detail=event.detail,
                              suppressed=self._rejects_logged.take_suppressed(event.reason))

    def _on_frame(self, frame: Frame, t_ns: int) -> str | None:
        if self._in_error:
            self._in_error = False
            self.counters["resyncs"] += 1
        self._last_valid_ns = t_ns
        message = frame.message
        fault = None
        if isinstance(message, State):
            self._on_state(frame.seq, message, t_ns)
        elif isinstance(message, Fault):
            fault = self._on_fault(message, t_ns)
        elif isinstance(message, Capabilities):
            if self._in_run():
                fault = f"rig on {self.port} restarted mid-run (CAPABILITIES again)"
                self.capabilities = message
            elif self.expected_nonce is not None and message.nonce != self.expected_nonce:
                self.counters["stale_capabilities"] += 1  # not the answer to our HELLO
            else:
                self.capabilities = message
        elif not isinstance(message, Heartbeat):
            self.counters["unexpected_frames"] += 1
        flagged = self._on_flags(frame.flags)  # the flags are the rig's news, whatever else
        return fault or flagged

    def _in_run(self) -> bool:
        return self.clear_ns is not None and not self.closing

    def _on_state(self, seq: int, message: State, t_ns: int) -> None:
        if len(message.values) != self._n_states:
            self.counters["unexpected_frames"] += 1
            self.mismatched_state_count = len(message.values)
            return
        rig_us = self.rig_clock.unwrap(message.timestamp_us)
        sample_ns = self.rig_clock.observe(rig_us, t_ns)
        if self.clear_ns is not None:  # the run's figures; before it the host is busy starting
            self._latency.record_ns("rig_to_plant", t_ns - sample_ns)
        sample = Sample(seq, rig_us, sample_ns, t_ns, np.array(message.values))
        with self._fresh:
            self.latest = sample
            self._fresh.notify_all()
        self.counters["states_rx"] += 1

    def _on_fault(self, message: Fault, t_ns: int) -> str | None:
        code = message.code
        name = code.name if isinstance(code, FaultCode) else f"0x{code:02X}"
        self.rig_fault = {"code": int(code), "name": name, "detail": message.detail,
                          "t_ns": t_ns}
        if self._in_run():
            return f"rig on {self.port} reported FAULT {name} (detail {message.detail})"
        return None

    def _on_flags(self, flags: Flags) -> str | None:
        self.flags = flags
        if flags & Flags.MOTOR_ENABLED:
            if self.clear_ns is not None:
                self.armed_seen = True
        elif self.armed_seen and not self.closing:
            # The FAULT frame may have been lost on the line; the flags say it all the same.
            return f"rig on {self.port} disarmed itself (flags {flags!r})"
        return None

    def line_statistics(self) -> dict[str, int]:
        """What the line did to the frames: the decoder's counts as the report names them."""
        st = self.decoder.statistics()
        return {
            "frames_rx": st.frames_ok,
            "crc_errors": st.crc_errors,
            "framing_errors": st.too_long_errors + st.cobs_errors + st.length_errors,
            "seq_gaps": st.sequence_gaps,
            "resyncs": self.counters["resyncs"],
            "frames_missed": st.frames_missed,
            "duplicates": st.duplicates,
            "sequence_resets": st.sequence_resets,
            "other_rejects": st.version_errors + st.type_errors + st.value_errors,
        }

    # ----------------------------------------------------------------- plant loop's thread
    def wait_fresh(self, seq: int, deadline_ns: int) -> Sample:
        """The newest sample, waiting until `deadline_ns` for one newer than `seq`: a late
        state (counted) if one comes, else the same one as a stale tick (counted), at once
        if the frame it waits for arrived damaged. Returns at once after `fault_latched`."""
        with self._fresh:
            while True:
                latest = self.latest
                assert latest is not None
                remaining = deadline_ns - self._clock()
                if latest.seq != seq or self._aborted:
                    if latest.seq != seq:
                        self.counters["late_states"] += 1
                    return latest
                if remaining <= 0 or self._last_reject_ns > latest.arrival_ns:
                    self.counters["stale_ticks"] += 1
                    return latest
                self._fresh.wait(remaining / 1e9)

    def fault_latched(self) -> None:
        """Release `wait_fresh` now and from now on: the plant goes safe."""
        with self._fresh:
            self._aborted = True
            self._fresh.notify_all()
