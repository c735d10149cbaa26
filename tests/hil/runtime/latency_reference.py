"""Latency recording as it was: every sample straight into its HDR histogram.

`hil.runtime.latency.LatencyMonitor` buffers samples and folds them into its histograms in
batches; its tests hold it to this per-sample path (the same encoded histograms and counts),
and benchmarks/bench_codec.py measures both side by side.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from hdrh.histogram import HdrHistogram

from hil.runtime.latency import ENCODING_SCHEMA, HIGHEST_NS, LOWEST_NS, SIGNIFICANT_FIGURES


class PerSampleRecorder:
    """The monitor's former `record_ns`, and its `encode()` without deadlines."""

    def __init__(self, figures: Iterable[str]) -> None:
        self.histograms = {name: HdrHistogram(LOWEST_NS, HIGHEST_NS, SIGNIFICANT_FIGURES)
                           for name in figures}
        self.clamped = dict.fromkeys(self.histograms, 0)
        self.negative = dict.fromkeys(self.histograms, 0)
        self._lock = threading.Lock()

    def record_ns(self, figure: str, value_ns: int) -> None:
        with self._lock:
            histogram = self.histograms[figure]
            if value_ns < 0:
                self.negative[figure] += 1
                value_ns = 0
            elif value_ns > HIGHEST_NS:
                self.clamped[figure] += 1
                value_ns = HIGHEST_NS
            histogram.record_value(value_ns)

    def encode(self) -> dict[str, Any]:
        return {
            "schema": ENCODING_SCHEMA,
            "unit": "ns",
            "histograms": {name: h.encode().decode("ascii")
                           for name, h in self.histograms.items()},
            "clamped": dict(self.clamped),
            "negative": dict(self.negative),
            "deadline": {"total": 0, "misses": 0, "max_consecutive": 0},
        }
