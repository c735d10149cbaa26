"""The live status line of `hil run` on a terminal: plant rate, deadline misses, round trip.

It reads the plant's recording as it is written (`hil.recording.recorder.RecordingTail`), so
the loops pay nothing for it: no extra messages, no shared memory, no locks.

- rate: plant steps per second of plant time since the previous update;
- misses: steps whose previous state had no applied answer when it was published (the
  plant's own deadline rule; ticks the plant skipped itself are not in the recording);
- round trip p99: over every control applied so far, in an HDR histogram (fixed memory).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import numpy as np
from hdrh.histogram import HdrHistogram

from hil.recording.recorder import RecordingTail
from hil.runtime.latency import HIGHEST_NS, LOWEST_NS, SIGNIFICANT_FIGURES


class LiveStatus:
    """Fold each poll of `plant_rec` into running figures; `line()` says them in one line."""

    def __init__(self, plant_rec: str | Path) -> None:
        self._tail = RecordingTail(plant_rec)
        self._round_trip = HdrHistogram(LOWEST_NS, HIGHEST_NS, SIGNIFICANT_FIGURES)
        self.steps = 0
        self.misses = 0
        self.rate_hz: float | None = None
        self.sim_time_s = 0.0
        self._last_t_ns: int | None = None
        self._last_control = -1

    def update(self) -> bool:
        """Read what the plant wrote since the last call; True if there was anything."""
        rows = self._tail.poll()
        if not rows or not len(rows["seq"]):
            return False
        seq, t_ns = rows["seq"], rows["t_ns"]
        self.misses += int(np.count_nonzero((seq >= 1) & (rows["answered_seq"] < seq - 1)))
        control = rows["control_seq"]
        new = np.diff(control, prepend=self._last_control) > 0
        for rt in rows["round_trip_ns"][new & (rows["round_trip_ns"] >= 0)]:
            self._round_trip.record_value(min(max(int(rt), LOWEST_NS), HIGHEST_NS))
        self._last_control = int(control[-1])
        first = self._last_t_ns if self._last_t_ns is not None else int(t_ns[0])
        n = len(seq) if self._last_t_ns is not None else len(seq) - 1
        if int(t_ns[-1]) > first and n > 0:
            self.rate_hz = n * 1e9 / (int(t_ns[-1]) - first)
        self._last_t_ns = int(t_ns[-1])
        self.steps += len(seq)
        self.sim_time_s = float(rows["sim_time_s"][-1])
        return True

    def line(self) -> str:
        if not self.steps:
            return "waiting for the plant's first steps..."
        rate = "-" if self.rate_hz is None else f"{self.rate_hz:.0f}"
        p99 = (f"{self._round_trip.get_value_at_percentile(99.0) / 1000:.0f} us"
               if self._round_trip.get_total_count() else "-")
        return (f"t {self.sim_time_s:6.1f} s  {rate:>5} Hz  misses {self.misses} "
                f"({self.misses / self.steps:.2%})  round trip p99 {p99}")


class StatusPrinter:
    """Redraw a `LiveStatus` line in place on `stream` at most every `interval_s`."""

    def __init__(self, status: LiveStatus, stream: TextIO = sys.stdout,
                 interval_s: float = 0.5, clock: Callable[[], float] = time.monotonic) -> None:
        self.status = status
        self.stream = stream
        self.interval_s = interval_s
        self.clock = clock
        self._next = 0.0
        self._shown = False

    def tick(self) -> None:
        now = self.clock()
        if now < self._next:
            return
        self._next = now + self.interval_s
        self.status.update()
        self.stream.write("\r\x1b[2K" + self.status.line())
        self.stream.flush()
        self._shown = True

    def finish(self) -> None:
        """End the status line so that what follows starts on a line of its own."""
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()
