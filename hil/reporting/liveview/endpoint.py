"""What the live view shows, from a running plant's observations (`hil watch --endpoint`).

`EndpointFeed(observer)` turns what an `hil.link.observer.Observer` receives into the same
`hello` and `update` snapshots `RecordingFeed` makes from a run folder, so the same page
shows them:

- `hello` from the plant's `observing` answer (run id, mode, rate, the plant's description and
  its inputs: name, unit, low, high each); again if the plant restarts (a new run at the same
  endpoint);
- `update` from the observations since the previous poll (about 40 a second): the run time
  and latest state, inputs (a list, one value per input: an observation's `u`, or the one
  number `input` of a plant of protocol 1) and flags, the series for the scrolling plots,
  and loop health: steps and deadline misses as the plant counts them, round trip p50/p99
  over the sampled controls (the newest applied control's round trip in each observation,
  so ~40 samples a second, not every control as from a recording), watchdog and safety
  state, and the copies the plant dropped for this observer. Events: the plant going safe
  (with its reason) and being cleared, seen as changes of the observations' safe reason;
  the plant going silent.

The plant sends only what the loop already has (no log lines), so gain changes are not among
the events here; `hil watch --run DIR` shows them from the logs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from hdrh.histogram import HdrHistogram

from hil.link import messages as msg
from hil.link.observer import Observer
from hil.recording.traces import described_inputs
from hil.runtime.latency import HIGHEST_NS, LOWEST_NS, SIGNIFICANT_FIGURES

Snapshot = dict[str, Any]
SILENT_NS = 1_000_000_000  # no observation for this long (mid-run): an event says so, once


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None  # JSON has no NaN


def _inputs(m: msg.Message) -> list[float | None]:
    """An observation's inputs as a list: its `u` (a list, one per input), or its `input`
    (one number from a plant of protocol 1, or a list)."""
    value = m.fields["u"] if "u" in m.fields else m.fields["input"]
    values = value if isinstance(value, list | tuple) else [value]
    return [_finite(float(v)) for v in values]


def _event(level: str, event: str, detail: str = "") -> dict[str, Any]:
    return {"process": "plant", "level": level, "event": event, "detail": detail,
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds")}


class EndpointFeed:
    """Snapshots of the plant `observer` is subscribed to (see module doc)."""

    def __init__(self, observer: Observer, first: msg.Message, max_points: int = 12,
                 clock: Callable[[], int] = time.monotonic_ns) -> None:
        self.observer = observer
        self.max_points = max_points
        self.clock = clock
        self.hello: Snapshot | None = None
        self._new_hello: Snapshot | None = None
        self._round_trip = HdrHistogram(LOWEST_NS, HIGHEST_NS, SIGNIFICANT_FIGURES)
        self._safe_reason = ""
        self._last_seen_ns = clock()
        self._silent = False
        self._final = False
        self.observations = 0
        self.dropped = 0
        self._on_observing(first)

    def _on_observing(self, m: msg.Message) -> None:
        desc = dict(m["description"])
        plant = {k: v for k, v in desc.items() if k not in ("t0_ns",)}
        names = list(plant.get("state_names") or [])
        plant.setdefault("state_units", [""] * len(names))
        self.hello = {"type": "hello", "run_id": m["run_id"] or self.observer.endpoint,
                      "mode": desc.get("mode"), "rate_hz": desc.get("rate_hz"),
                      "plant": plant, "source": self.observer.endpoint,
                      "inputs": [{"name": tr.name, "unit": tr.unit, "low": tr.low,
                                  "high": tr.high} for tr in described_inputs(desc)]}
        self._new_hello = self.hello
        self._round_trip.reset()
        self._safe_reason = desc.get("safe_reason") or ""
        self._final = False

    def poll(self, final: bool = False) -> list[Snapshot]:
        """A `hello` if new, then an `update` if anything arrived or happened."""
        out: list[Snapshot] = []
        observations: list[msg.Message] = []
        events: list[dict[str, Any]] = []
        for m in self.observer.poll():
            if m.kind == "observation":
                observations.append(m)
            elif m.kind == "observing":
                if observations:  # the old run's last copies first
                    out.append(self._update(observations, events))
                    observations, events = [], []
                self._on_observing(m)
                events.append(_event("warning", "the plant started a new run",
                                     f"run {m['run_id']}"))
        if self._new_hello is not None:
            out.append(self._new_hello)
            self._new_hello = None
        now = self.clock()
        if observations:
            self._last_seen_ns = now
            if self._silent:
                events.append(_event("info", "observations resumed"))
            self._silent = False
        elif (self.observations and not self._silent and not self._final and not final
              and now - self._last_seen_ns > SILENT_NS):  # (none before the run starts)
            self._silent = True
            events.append(_event("error", "no observation from the plant for 1 s",
                                 f"is it still running at {self.observer.endpoint}?"))
        if observations or events:
            out.append(self._update(observations, events))
        return out

    def _update(self, obs: list[msg.Message], events: list[dict[str, Any]]) -> Snapshot:
        update: Snapshot = {"type": "update", "events": events}
        for m in obs:
            self.observations += 1
            if m["round_trip_ns"] >= 0:
                self._round_trip.record_value(min(max(m["round_trip_ns"], LOWEST_NS),
                                                  HIGHEST_NS))
            reason = m["safe_reason"]
            if reason != self._safe_reason:
                events.append(_event("warning", f"safe output: {reason}") if reason else
                              _event("warning", "safe state cleared", self._safe_reason))
                self._safe_reason = reason
        if not obs:
            return update
        last = obs[-1]
        self.dropped = last["dropped"]
        flags = last["flags"]
        self._final = bool(flags & msg.FLAG_FINAL)
        step = max(1, math.ceil(len(obs) / self.max_points))
        picked = obs[len(obs) - 1::-step][::-1]  # always ends on the newest
        rt_count = self._round_trip.get_total_count()
        steps = last["steps"]
        update.update({
            "seq": last["seq"], "t": float(last["sim_time_s"]),
            "state": [_finite(float(v)) for v in last["state"]],
            "input": _inputs(last), "flags": flags,
            "series": {"t": [round(float(m["sim_time_s"]), 6) for m in picked],
                       "state": [[_finite(float(v)) for v in m["state"]] for m in picked],
                       "input": [_inputs(m) for m in picked]},
            "health": {
                "steps": steps, "misses": last["misses"],
                "miss_ratio": last["misses"] / steps if steps else 0.0,
                "round_trip_p50_us": (self._round_trip.get_value_at_percentile(50.0) / 1000
                                      if rt_count else None),
                "round_trip_p99_us": (self._round_trip.get_value_at_percentile(99.0) / 1000
                                      if rt_count else None),
                "round_trip_sampled": True, "observer_dropped": self.dropped,
                "safe": bool(flags & msg.FLAG_SAFE),
                "watchdog": bool(flags & msg.FLAG_WATCHDOG),
                "safety": bool(flags & msg.FLAG_SAFETY), "final": self._final,
            },
        })
        return update
