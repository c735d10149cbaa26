"""What the live view shows, read from a run folder as the processes write it.

`RecordingFeed(run_dir)` tails the plant's recording (`RecordingTail`, docs/recording.md) and
the warnings of the processes' logs. The loops pay nothing for it: the recorder already
writes every plant step to the page cache every 50 ms, off the loop, and this reads it back
from another process. Each `poll()` returns at most one `Snapshot` (a JSON-able dict):

- `hello`: run id, mode, rate, the plant's description (state names, units, params) and its
  inputs (`inputs`: name, unit, low, high each), once the recording's header is readable;
  sent again to each page that connects;
- `update`: the run time, the latest state, inputs (`input`: a list, one value per input) and
  flags, a decimated series of the rows
  since the previous update (at most `max_points`) for the scrolling plots, loop health
  (steps, deadline misses as the plant scores them, round trip p50/p99 over every applied
  control, watchdog and safety state from the flags) and new events (warnings and errors
  from plant.log.jsonl and controller.log.jsonl: gate trips, watchdog, clears, gains).

The recorder writes a chunk every 50 ms, so rows arrive 50 at a time at 1 kHz. To move
smoothly at the page's 30 updates a second, the feed plays them out on the plant's clock
(`time.monotonic_ns`: one clock for all the processes of a host): a poll hands out the rows
published up to `delay_ns` (150 ms) before it. `poll(final=True)` hands out all there is.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

from hil.recording.recorder import RecordingTail
from hil.recording.traces import input_traces
from hil.runtime.latency import HIGHEST_NS, LOWEST_NS, SIGNIFICANT_FIGURES

Snapshot = dict[str, Any]

FLAG_SAFE, FLAG_WATCHDOG, FLAG_SAFETY, FLAG_FINAL = 1, 2, 4, 8  # hil.link.messages
_LOGS = ("plant.log.jsonl", "controller.log.jsonl")
_EVENT_LEVELS = ("warning", "error", "critical")
_MAX_EVENTS_PER_UPDATE = 20
_MAX_LOG_READ = 1 << 20  # bytes of log read per poll: a flood of warnings stays bounded


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None  # JSON has no NaN


class LogTail:
    """New complete lines of a JSON-lines log; a partial last line waits for the next poll."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._pos = 0

    def poll(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as f:
                f.seek(self._pos)
                data = f.read(_MAX_LOG_READ)
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1
        self._pos += end
        out = []
        for line in data[:end].splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict):
                out.append(entry)
        return out


class RecordingFeed:
    """Snapshots of the run in `run_dir`, from its plant.rec and logs (see module doc)."""

    def __init__(self, run_dir: str | Path, max_points: int = 12, delay_ns: int = 150_000_000,
                 clock: Callable[[], int] = time.monotonic_ns) -> None:
        self.run_dir = Path(run_dir)
        self.max_points = max_points
        self.delay_ns = delay_ns
        self.clock = clock
        self._pending: dict[str, np.ndarray] = {}
        self._health: dict[str, Any] = {}
        self._tail = RecordingTail(self.run_dir / "plant.rec")
        self._logs = [LogTail(self.run_dir / name) for name in _LOGS]
        self.hello: Snapshot | None = None
        self._round_trip = HdrHistogram(LOWEST_NS, HIGHEST_NS, SIGNIFICANT_FIGURES)
        self._state_names: list[str] = []
        self._inputs: list[str] = []  # the input columns
        self.steps = 0
        self.misses = 0
        self._last_control = -1
        self.events_seen = 0

    def poll(self, final: bool = False) -> list[Snapshot]:
        """What happened since the last poll: a `hello` (once), then an `update` if any."""
        out: list[Snapshot] = []
        rows = self._tail.poll()
        if self.hello is None and self._tail.columns:
            self.hello = self._make_hello()
            out.append(self.hello)
        if rows and len(rows["seq"]):
            self._ingest(rows)
        due = self._due(final)
        events = self._events()
        if due or events:
            out.append(self._update(due, events))
        return out

    def _ingest(self, rows: dict[str, np.ndarray]) -> None:
        """Fold new rows into the health figures and queue them for playing out."""
        seq = rows["seq"]
        self.steps += len(seq)
        self.misses += int(np.count_nonzero((seq >= 1) & (rows["answered_seq"] < seq - 1)))
        control = rows["control_seq"]
        new = np.diff(control, prepend=self._last_control) > 0
        for rt in rows["round_trip_ns"][new & (rows["round_trip_ns"] >= 0)]:
            self._round_trip.record_value(min(max(int(rt), LOWEST_NS), HIGHEST_NS))
        self._last_control = int(control[-1])
        keep = ["t_ns", "seq", "sim_time_s", "flags", *self._state_names]
        keep += self._inputs
        if self._pending:
            self._pending = {k: np.concatenate((self._pending[k], rows[k])) for k in keep}
        else:
            self._pending = {k: rows[k] for k in keep}
        rt_count = self._round_trip.get_total_count()
        self._health = {
            "steps": self.steps, "misses": self.misses, "miss_ratio": self.misses / self.steps,
            "round_trip_p50_us": (self._round_trip.get_value_at_percentile(50.0) / 1000
                                  if rt_count else None),
            "round_trip_p99_us": (self._round_trip.get_value_at_percentile(99.0) / 1000
                                  if rt_count else None)}

    def _due(self, final: bool) -> dict[str, np.ndarray]:
        """The queued rows published `delay_ns` ago or earlier (all of them when `final`)."""
        if not self._pending:
            return {}
        t_ns = self._pending["t_ns"]
        n = len(t_ns) if final else int(np.searchsorted(t_ns, self.clock() - self.delay_ns,
                                                         side="right"))
        if n == 0:
            return {}
        due = {k: v[:n] for k, v in self._pending.items()}
        self._pending = {k: v[n:] for k, v in self._pending.items()} if n < len(t_ns) else {}
        return due

    # ----------------------------------------------------------------- internals
    def _make_hello(self) -> Snapshot:
        meta, tail = self._tail.meta, self._tail
        plant = dict(meta.get("plant") or {})
        names = [c.name for c in tail.columns]
        state_names = list(plant.get("state_names") or [])
        if not state_names or not set(state_names) <= set(names):
            state_names = list(tail.states)  # no description: the columns before the inputs
        units = {c.name: c.unit for c in tail.columns}
        self._state_names = state_names
        self._inputs = list(tail.inputs)
        plant.setdefault("state_names", state_names)
        plant.setdefault("state_units", [units[n] for n in state_names])
        period_ns = meta.get("period_ns")
        inputs = input_traces(tail.inputs, {c.name: c.title for c in tail.columns}, units,
                              plant)
        return {"type": "hello", "run_id": meta.get("run_id") or self.run_dir.name,
                "mode": meta.get("mode"), "rate_hz": 1e9 / period_ns if period_ns else None,
                "plant": plant,
                "inputs": [{"name": tr.name, "unit": tr.unit, "low": tr.low, "high": tr.high}
                           for tr in inputs]}

    def _events(self) -> list[dict[str, Any]]:
        events = []
        for log in self._logs:
            for entry in log.poll():
                if entry.get("level") not in _EVENT_LEVELS:
                    continue
                self.events_seen += 1
                if len(events) < _MAX_EVENTS_PER_UPDATE:
                    detail = {k: v for k, v in entry.items()
                              if k not in ("event", "level", "timestamp", "process")}
                    events.append({"process": entry.get("process"), "level": entry["level"],
                                   "event": str(entry.get("event"))[:200],
                                   "timestamp": entry.get("timestamp"),
                                   "detail": json.dumps(detail, default=str)[:300]})
        return events

    def _update(self, rows: dict[str, np.ndarray], events: list[dict[str, Any]]) -> Snapshot:
        update: Snapshot = {"type": "update", "events": events}
        if not rows or not len(rows.get("seq", ())):
            return update
        seq = rows["seq"]
        t = rows["sim_time_s"]
        step = max(1, math.ceil(len(seq) / self.max_points))
        pick = np.arange(len(seq) - 1, -1, -step)[::-1]  # always ends on the newest row
        state = np.stack([rows[n] for n in self._state_names], axis=1) if self._state_names \
            else np.empty((len(seq), 0))
        inputs = np.stack([rows[c] for c in self._inputs], axis=1) if self._inputs \
            else np.empty((len(seq), 0))
        flags = int(rows["flags"][-1])
        update.update({
            "seq": int(seq[-1]), "t": float(t[-1]),
            "state": [_finite(v) for v in state[-1].tolist()],
            "input": [_finite(v) for v in inputs[-1].tolist()], "flags": flags,
            "series": {"t": t[pick].round(6).tolist(),
                       "state": [[_finite(v) for v in row] for row in state[pick].tolist()],
                       "input": [[_finite(v) for v in row] for row in inputs[pick].tolist()]},
            "health": {
                **self._health,
                "safe": bool(flags & FLAG_SAFE), "watchdog": bool(flags & FLAG_WATCHDOG),
                "safety": bool(flags & FLAG_SAFETY), "final": bool(flags & FLAG_FINAL),
            },
        })
        return update
