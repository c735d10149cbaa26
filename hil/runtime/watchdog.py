"""The plant's watchdog, modelled on the hardware watchdog timers of lab I/O cards.

Every valid control reloads (`feed()`) the watchdog; the plant calls `check()` each period.
Once the deadline passes the watchdog latches: `check()` keeps returning True, feeds are
ignored (and counted), and only an explicit `clear()` unlatches it. Each expiry is recorded
as a `Trip`, and `statistics()` reports the worst time from the last valid feed to the safe
output. Time comes from the injected clock, in integer nanoseconds.

Not thread-safe: feed, check and clear it from the plant loop's thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

__all__ = ["Trip", "Watchdog", "WatchdogStatistics"]

_NS_PER_MS = 1_000_000.0


@dataclass(frozen=True, slots=True)
class Trip:
    """One expiry of the watchdog.

    `last_feed_ns`: the last valid feed (or the `arm()`/`clear()` that started the period);
    `detected_ns`: when `check()`, or a late `feed()`, saw the expiry; `safe_output_ns`: when
    the plant applied its safe output, None until `note_safe_output()` stamps it.
    """

    last_feed_ns: int
    detected_ns: int
    safe_output_ns: int | None = None

    @property
    def time_to_detect_ns(self) -> int:
        return self.detected_ns - self.last_feed_ns

    @property
    def time_to_safe_ns(self) -> int:
        """Last valid feed -> safe output, or -> detection if no safe output was stamped."""
        end_ns = self.detected_ns if self.safe_output_ns is None else self.safe_output_ns
        return end_ns - self.last_feed_ns


@dataclass(frozen=True, slots=True)
class WatchdogStatistics:
    """`worst_time_to_safe_ms` is None until the first trip."""

    trips: int
    timeout_ms: float
    worst_time_to_safe_ms: float | None
    latched: bool
    feeds: int
    feeds_ignored_while_latched: int

    def to_dict(self) -> dict[str, int | float | bool | None]:
        return asdict(self)


class Watchdog:
    """A latching watchdog timer that expires `timeout_ns` after the last valid feed.

    Lifecycle: created stopped; `arm()` starts it with a deadline `timeout_ns` from now;
    `feed()` pushes the deadline to `timeout_ns` from now; it expires when the clock reaches
    `deadline_ns`. Expiry is noticed by `check()` or by a `feed()` that comes too late (a
    late feed never revives an expired watchdog); either latches it and records a `Trip`.
    `clear()` is the only way out of the latch and re-arms with a fresh deadline.
    """

    def __init__(self, timeout_ns: int, clock: Callable[[], int] = time.monotonic_ns) -> None:
        if timeout_ns <= 0:
            raise ValueError(f"timeout_ns must be > 0, got {timeout_ns}")
        self._timeout_ns = timeout_ns
        self._clock = clock
        self._armed = False
        self._latched = False
        self._last_feed_ns = 0
        self._deadline_ns = 0
        self._feeds = 0
        self._feeds_ignored = 0
        self._trips = 0
        self._last_trip: Trip | None = None
        self._worst_time_to_safe_ns: int | None = None

    @property
    def timeout_ns(self) -> int:
        return self._timeout_ns

    @property
    def armed(self) -> bool:
        """True from `arm()` on, latched or not."""
        return self._armed

    @property
    def latched(self) -> bool:
        return self._latched

    @property
    def deadline_ns(self) -> int | None:
        """The clock reading at which it expires (past, if latched); None before `arm()`."""
        return self._deadline_ns if self._armed else None

    @property
    def last_trip(self) -> Trip | None:
        return self._last_trip

    def arm(self, first_timeout_ns: int | None = None) -> None:
        """Start the watchdog: it expires `timeout_ns` from now unless fed, or
        `first_timeout_ns` from now for the first feed (a start-up budget: the peer's first
        valid message may take longer than the steady-state period; every later feed reloads
        with `timeout_ns`).

        Raises RuntimeError if it is already armed (use `feed()` to reload, `clear()` to
        unlatch), ValueError for a first timeout that is not > 0.
        """
        if self._armed:
            raise RuntimeError("watchdog is already armed; feed() reloads it, clear() unlatches")
        if first_timeout_ns is not None and first_timeout_ns <= 0:
            raise ValueError(f"first_timeout_ns must be > 0, got {first_timeout_ns}")
        self._armed = True
        now_ns = self._clock()
        self._reload(now_ns)
        if first_timeout_ns is not None:
            self._deadline_ns = now_ns + first_timeout_ns

    def feed(self) -> bool:
        """Reload the deadline; True if it did.

        False, and nothing changes, before `arm()`. False while latched, counted in
        `feeds_ignored_while_latched`; a feed at or after the deadline latches the watchdog
        first, so it is ignored too.
        """
        if not self._armed:
            return False
        now_ns = self._clock()
        if self._latched or self._expire_if_due(now_ns):
            self._feeds_ignored += 1
            return False
        self._feeds += 1
        self._reload(now_ns)
        return True

    def check(self) -> bool:
        """True exactly when the watchdog has expired (and so is latched). Call every period."""
        if not self._armed:
            return False
        return self._latched or self._expire_if_due(self._clock())

    def clear(self) -> bool:
        """Unlatch and re-arm with a fresh deadline; True if it was latched, else no-op."""
        if not self._latched:
            return False
        self._latched = False
        self._reload(self._clock())
        return True

    def note_safe_output(self, t_ns: int) -> bool:
        """Stamp when the plant applied its safe output for the current trip.

        Only the first stamp of a trip counts; returns True if this one did. False when
        there is no latched trip to stamp. Raises ValueError if `t_ns` is before the trip
        was detected.
        """
        trip = self._last_trip
        if not self._latched or trip is None or trip.safe_output_ns is not None:
            return False
        if t_ns < trip.detected_ns:
            raise ValueError(
                f"t_ns must be >= the trip's detection time {trip.detected_ns}, got {t_ns}"
            )
        trip = Trip(trip.last_feed_ns, trip.detected_ns, safe_output_ns=t_ns)
        self._last_trip = trip
        self._note_time_to_safe(trip)
        return True

    def statistics(self) -> WatchdogStatistics:
        worst_ns = self._worst_time_to_safe_ns
        return WatchdogStatistics(
            trips=self._trips,
            timeout_ms=self._timeout_ns / _NS_PER_MS,
            worst_time_to_safe_ms=None if worst_ns is None else worst_ns / _NS_PER_MS,
            latched=self._latched,
            feeds=self._feeds,
            feeds_ignored_while_latched=self._feeds_ignored,
        )

    def _reload(self, now_ns: int) -> None:
        self._last_feed_ns = now_ns
        self._deadline_ns = now_ns + self._timeout_ns

    def _expire_if_due(self, now_ns: int) -> bool:
        if now_ns < self._deadline_ns:
            return False
        self._latched = True
        self._trips += 1
        trip = Trip(last_feed_ns=self._last_feed_ns, detected_ns=now_ns)
        self._last_trip = trip
        self._note_time_to_safe(trip)
        return True

    def _note_time_to_safe(self, trip: Trip) -> None:
        worst_ns = self._worst_time_to_safe_ns
        self._worst_time_to_safe_ns = (
            trip.time_to_safe_ns if worst_ns is None else max(worst_ns, trip.time_to_safe_ns)
        )
