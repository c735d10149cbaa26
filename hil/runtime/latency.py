"""Latency and deadline bookkeeping for a run: one HDR histogram per timing figure.

`LatencyMonitor` records the timing figures of docs/design.md ("Timing and latency figures") in
HDR histograms from the `hdrhistogram` package, and counts deadline misses. Values are
recorded in integer nanoseconds (1 ns .. 60 s, 3 significant digits) and reported in
microseconds. A process ships its histograms in its JSON report with `encode()`; another
rebuilds them with `LatencyMonitor.decode()` and folds them together with `merge()`.

Out-of-range values are never dropped: a negative value (clock skew between two readings)
is recorded as 0 ns and counted in `negative`; a value above 60 s is recorded as 60 s and
counted in `clamped`.

Recording a value is a store into the figure's buffer of about `BUFFER_SAMPLES` int64
samples: the hdrhistogram package records in Python (microseconds a value). A full buffer,
and every `statistics()`, `encode()` and `merge()`, folds the buffered samples into the
histogram at once with NumPy (tens of microseconds for a full buffer), count for count what
recording them one by one would have done. The figures' buffers differ in size by
`STAGGER_SAMPLES`, so that figures recorded on the same tick do not all fold on one tick.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from hdrh.histogram import HdrHistogram

__all__ = [
    "BUFFER_SAMPLES",
    "DEFAULT_FIGURES",
    "ENCODING_SCHEMA",
    "HIGHEST_NS",
    "LOWEST_NS",
    "SIGNIFICANT_FIGURES",
    "STAGGER_SAMPLES",
    "DeadlineStatistics",
    "LatencyMonitor",
    "LatencyStatistics",
    "Percentiles",
]

DEFAULT_FIGURES: tuple[str, ...] = (
    "round_trip",
    "state_to_controller",
    "controller_to_plant",
    "compute",
    "controller_lateness",
    "plant_lateness",
)
LOWEST_NS = 1
HIGHEST_NS = 60_000_000_000
SIGNIFICANT_FIGURES = 3
ENCODING_SCHEMA = "hil-latency/1"
BUFFER_SAMPLES = 1024
STAGGER_SAMPLES = 61

_PERCENTILES = (50.0, 90.0, 99.0, 99.9)
_NS_PER_US = 1000.0


@dataclass(frozen=True, slots=True)
class Percentiles:
    """One figure's distribution in microseconds, to 3 significant digits.

    An empty figure has `count == 0` and every other field None (JSON null): there is no
    latency to report, and 0.0 would read as a perfect one.
    """

    p50: float | None
    p90: float | None
    p99: float | None
    p999: float | None
    max: float | None
    count: int

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class DeadlineStatistics:
    """Deadline misses: `miss_ratio` is `misses / total`, 0.0 before the first deadline."""

    total: int
    misses: int
    miss_ratio: float
    max_consecutive: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class LatencyStatistics:
    """A consistent snapshot of a `LatencyMonitor`.

    `clamped` and `negative` count, per figure, the values recorded as 60 s and as 0 ns.
    """

    figures: Mapping[str, Percentiles]
    deadline: DeadlineStatistics
    clamped: Mapping[str, int]
    negative: Mapping[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {
            "figures": {name: p.to_dict() for name, p in self.figures.items()},
            "deadline": self.deadline.to_dict(),
            "clamped": dict(self.clamped),
            "negative": dict(self.negative),
        }


def _new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_NS, HIGHEST_NS, SIGNIFICANT_FIGURES)


# The histograms' layout, for computing their counts indices on arrays (_counts_indices).
_LAYOUT = _new_histogram()
_UNIT_MAGNITUDE: int = _LAYOUT.unit_magnitude
_HALF_MAGNITUDE: int = _LAYOUT.sub_bucket_half_count_magnitude
_HALF_COUNT: int = _LAYOUT.sub_bucket_half_count
_SUB_BUCKET_MASK: int = _LAYOUT.sub_bucket_mask


def _counts_indices(values: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Each value's index in a histogram's counts: hdrh's `_counts_index_for`, on an array.

    The bucket is the power of two above the value (at least the sub-bucket range): its bit
    length, which `frexp` gives exactly for integers below 2**53. The sub-bucket is the
    value's leading bits within the bucket.
    """
    bit_length = np.frexp((values | _SUB_BUCKET_MASK).astype(np.float64))[1]
    bucket = bit_length.astype(np.int64) - (_UNIT_MAGNITUDE + _HALF_MAGNITUDE + 1)
    sub_bucket = values >> (bucket + _UNIT_MAGNITUDE)
    indices: npt.NDArray[np.int64] = ((bucket + 1) << _HALF_MAGNITUDE) + sub_bucket - _HALF_COUNT
    return indices


class _Figure:
    """One figure's histogram, its out-of-range counts and its samples not yet folded in."""

    __slots__ = ("capacity", "clamped", "histogram", "negative", "pending", "samples")

    def __init__(self, capacity: int) -> None:
        self.histogram = _new_histogram()
        self.clamped = 0
        self.negative = 0
        self.capacity = capacity
        self.samples = np.zeros(capacity, dtype=np.int64)
        self.pending = 0

    def fold(self) -> None:
        """Record the pending samples in the histogram as `record_value` would, one by one:
        the same counts, total, minimum and maximum.

        It adds into the histogram's own counts (a ctypes array of 64-bit counters) and sets
        the three fields `record_value` sets; tests/hil/runtime/test_latency.py holds the
        outcome to `record_value`'s, bit for bit, for the hdrhistogram installed.
        """
        if not self.pending:
            return
        values = self.samples[: self.pending]
        low, high = int(np.min(values)), int(np.max(values))
        if low < 0 or high > HIGHEST_NS:
            self.negative += int(np.count_nonzero(values < 0))
            self.clamped += int(np.count_nonzero(values > HIGHEST_NS))
            values = np.clip(values, 0, HIGHEST_NS)
            low, high = max(low, 0), min(high, HIGHEST_NS)
        indices = _counts_indices(values)
        first = int(np.min(indices))
        added = np.bincount(indices - first)  # over the samples' span, not the whole histogram
        histogram = self.histogram
        counts = np.frombuffer(histogram.counts, dtype=np.int64)
        counts[first : first + added.size] += added
        histogram.total_count += self.pending
        histogram.min_value = min(histogram.min_value, low)
        histogram.max_value = max(histogram.max_value, high)
        self.pending = 0


def _new_figures(names: tuple[str, ...]) -> dict[str, _Figure]:
    return {name: _Figure(BUFFER_SAMPLES + i * STAGGER_SAMPLES) for i, name in enumerate(names)}


@dataclass(frozen=True, slots=True)
class _Snapshot:
    histograms: dict[str, HdrHistogram]
    clamped: dict[str, int]
    negative: dict[str, int]
    total: int
    misses: int
    max_consecutive: int


class LatencyMonitor:
    """HDR histograms of the run's timing figures, plus deadline-miss counts.

    Thread-safe: every method takes the monitor's lock, so the loop thread can record while
    another thread calls `statistics()`, `encode()` or `merge()`, and each snapshot holds all
    figures and the deadline counts as of one instant. The lock is held only briefly: one
    store of a sample (and, once in about `BUFFER_SAMPLES`, a NumPy fold of the buffer), or
    the folds of the buffered samples and a C-level copy of the histograms' counts;
    percentiles are computed from the copy after the lock is released, so a report does not
    stall the loop.
    """

    def __init__(self, figures: Iterable[str] = DEFAULT_FIGURES) -> None:
        names = tuple(figures)
        if not names:
            raise ValueError("figures must name at least one figure, got none")
        if len(set(names)) != len(names):
            raise ValueError(f"figures must be distinct, got {names!r}")
        self._names = names
        self._figures = _new_figures(names)
        self._lock = threading.Lock()
        self._total = 0
        self._misses = 0
        self._consecutive = 0
        self._max_consecutive = 0

    @property
    def figures(self) -> tuple[str, ...]:
        return self._names

    @property
    def misses(self) -> int:
        """Deadlines missed so far (an int read: the loop that records them may call it)."""
        return self._misses

    @property
    def consecutive_misses(self) -> int:
        """The current run of consecutive deadline misses (0 after a met deadline)."""
        with self._lock:
            return self._consecutive

    def record_ns(self, figure: str, value_ns: int) -> None:
        """Record one value of `figure`, in integer nanoseconds. O(1) amortised: a store into
        the figure's buffer, folded into its histogram when full.

        Raises KeyError naming the figure and the known ones if `figure` is unknown.
        """
        with self._lock:
            try:
                entry = self._figures[figure]
            except KeyError:
                raise KeyError(
                    f"unknown latency figure {figure!r}; known figures: {list(self._names)!r}"
                ) from None
            try:
                entry.samples[entry.pending] = value_ns
            except OverflowError:  # beyond int64: out of range all the same
                entry.samples[entry.pending] = HIGHEST_NS + 1 if value_ns > 0 else -1
            entry.pending += 1
            if entry.pending == entry.capacity:
                entry.fold()

    def record_deadline(self, met: bool) -> None:
        """Count one deadline, met or missed."""
        with self._lock:
            self._total += 1
            if met:
                self._consecutive = 0
            else:
                self._misses += 1
                self._consecutive += 1
                self._max_consecutive = max(self._max_consecutive, self._consecutive)

    def statistics(self) -> LatencyStatistics:
        """Percentiles of every figure (µs) and the deadline counts, as of one instant."""
        snapshot = self._snapshot()
        ratio = snapshot.misses / snapshot.total if snapshot.total else 0.0
        return LatencyStatistics(
            figures={name: _percentiles(h) for name, h in snapshot.histograms.items()},
            deadline=DeadlineStatistics(
                total=snapshot.total,
                misses=snapshot.misses,
                miss_ratio=ratio,
                max_consecutive=snapshot.max_consecutive,
            ),
            clamped=snapshot.clamped,
            negative=snapshot.negative,
        )

    def encode(self) -> dict[str, Any]:
        """The whole monitor as a JSON-ready dict; histograms in HDR's base64 compressed form.

        `LatencyMonitor.decode()` rebuilds an equal monitor (the current run of consecutive
        misses is not shipped: it has no meaning in another process).
        """
        snapshot = self._snapshot()
        return {
            "schema": ENCODING_SCHEMA,
            "unit": "ns",
            "histograms": {
                name: h.encode().decode("ascii") for name, h in snapshot.histograms.items()
            },
            "clamped": snapshot.clamped,
            "negative": snapshot.negative,
            "deadline": {
                "total": snapshot.total,
                "misses": snapshot.misses,
                "max_consecutive": snapshot.max_consecutive,
            },
        }

    @classmethod
    def decode(cls, data: Mapping[str, Any]) -> LatencyMonitor:
        """Rebuild a monitor from `encode()` output, e.g. read from another process's JSON.

        Raises ValueError saying what is wrong if `data` is not such output.
        """
        try:
            if data["schema"] != ENCODING_SCHEMA:
                raise ValueError(f"schema must be {ENCODING_SCHEMA!r}, got {data['schema']!r}")
            blobs: Mapping[str, str] = data["histograms"]
            monitor = cls(blobs)
            for name, blob in blobs.items():
                entry = monitor._figures[name]
                entry.histogram.add(_decode_histogram(name, blob))
                entry.clamped = int(data["clamped"][name])
                entry.negative = int(data["negative"][name])
            deadline = data["deadline"]
            monitor._total = int(deadline["total"])
            monitor._misses = int(deadline["misses"])
            monitor._max_consecutive = int(deadline["max_consecutive"])
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not an encoded LatencyMonitor: {exc!r}") from exc
        return monitor

    def merge(self, other: LatencyMonitor) -> None:
        """Add `other`'s histograms and counts into this monitor.

        Every figure of `other` must be one of ours (KeyError otherwise); figures it lacks are
        left as they are. Misses and totals add up; `max_consecutive` is the larger of the
        two, since runs recorded by different monitors are not contiguous; our current run
        of consecutive misses is kept.
        """
        snapshot = other._snapshot()
        unknown = [name for name in snapshot.histograms if name not in self._figures]
        if unknown:
            raise KeyError(
                f"cannot merge figures {unknown!r}: this monitor knows {list(self._names)!r}"
            )
        with self._lock:
            for name, histogram in snapshot.histograms.items():
                entry = self._figures[name]
                entry.histogram.add(histogram)
                entry.clamped += snapshot.clamped[name]
                entry.negative += snapshot.negative[name]
            self._total += snapshot.total
            self._misses += snapshot.misses
            self._max_consecutive = max(self._max_consecutive, snapshot.max_consecutive)

    def reset(self) -> None:
        """Forget everything recorded so far."""
        fresh = _new_figures(self._names)
        with self._lock:
            self._figures = fresh
            self._total = 0
            self._misses = 0
            self._consecutive = 0
            self._max_consecutive = 0

    def _snapshot(self) -> _Snapshot:
        # Allocate the copies before taking the lock: only the folds of the buffered samples
        # and the C-level adds run under it.
        copies = {name: _new_histogram() for name in self._names}
        with self._lock:
            for name, copy in copies.items():
                entry = self._figures[name]
                entry.fold()
                copy.add(entry.histogram)
            return _Snapshot(
                histograms=copies,
                clamped={name: f.clamped for name, f in self._figures.items()},
                negative={name: f.negative for name, f in self._figures.items()},
                total=self._total,
                misses=self._misses,
                max_consecutive=self._max_consecutive,
            )


def _decode_histogram(name: str, blob: str) -> HdrHistogram:
    try:
        histogram = HdrHistogram.decode(blob)
    except Exception as exc:  # hdrh raises assorted types: binascii, zlib, its own
        raise ValueError(f"histogram {name!r} is not an HDR histogram: {exc!r}") from exc
    layout = (
        histogram.lowest_trackable_value,
        histogram.highest_trackable_value,
        histogram.significant_figures,
    )
    expected = (LOWEST_NS, HIGHEST_NS, SIGNIFICANT_FIGURES)
    if layout != expected:
        raise ValueError(
            f"histogram {name!r} has (lowest, highest, significant figures) {layout}, "
            f"expected {expected} (nanoseconds)"
        )
    return histogram


def _percentiles(histogram: HdrHistogram) -> Percentiles:
    count = histogram.get_total_count()
    if count == 0:
        return Percentiles(p50=None, p90=None, p99=None, p999=None, max=None, count=0)
    values = histogram.get_percentile_to_value_dict(list(_PERCENTILES))
    p50, p90, p99, p999 = (values[p] / _NS_PER_US for p in _PERCENTILES)
    return Percentiles(
        p50=p50,
        p90=p90,
        p99=p99,
        p999=p999,
        max=histogram.get_max_value() / _NS_PER_US,
        count=count,
    )
