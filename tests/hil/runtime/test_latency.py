"""hil.runtime.latency: percentiles, out-of-range values, deadlines, encode/merge, threads."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import pytest
from hdrh.histogram import HdrHistogram
from hypothesis import given, settings
from hypothesis import strategies as st
from latency_reference import PerSampleRecorder

from hil.runtime.latency import (
    BUFFER_SAMPLES,
    DEFAULT_FIGURES,
    ENCODING_SCHEMA,
    HIGHEST_NS,
    DeadlineStatistics,
    LatencyMonitor,
    Percentiles,
)

EMPTY = Percentiles(p50=None, p90=None, p99=None, p999=None, max=None, count=0)


def within_3_significant_digits(reported_us: float, exact_ns: int) -> bool:
    return abs(reported_us * 1000.0 - exact_ns) <= exact_ns / 1000.0 + 1


def test_default_figures_are_the_six_design_figures() -> None:
    assert LatencyMonitor().figures == (
        "round_trip",
        "state_to_controller",
        "controller_to_plant",
        "compute",
        "controller_lateness",
        "plant_lateness",
    )


def test_empty_figure_reports_count_zero_and_none_percentiles() -> None:
    stats = LatencyMonitor().statistics()
    assert set(stats.figures) == set(DEFAULT_FIGURES)
    assert all(p == EMPTY for p in stats.figures.values())
    assert stats.deadline == DeadlineStatistics(
        total=0, misses=0, miss_ratio=0.0, max_consecutive=0
    )


def test_percentiles_are_reported_in_microseconds() -> None:
    monitor = LatencyMonitor(("compute",))
    for value_us in range(1, 1001):
        monitor.record_ns("compute", value_us * 1000)
    p = monitor.statistics().figures["compute"]
    assert p.count == 1000
    assert within_3_significant_digits(p.p50, 500_000)
    assert within_3_significant_digits(p.p90, 900_000)
    assert within_3_significant_digits(p.p99, 990_000)
    assert within_3_significant_digits(p.p999, 999_000)
    assert within_3_significant_digits(p.max, 1_000_000)


def test_small_values_are_exact_to_the_nanosecond() -> None:
    monitor = LatencyMonitor(("compute",))
    monitor.record_ns("compute", 1234)
    p = monitor.statistics().figures["compute"]
    assert (p.p50, p.max, p.count) == (1.234, 1.234, 1)


@given(st.lists(st.integers(min_value=0, max_value=HIGHEST_NS), min_size=1, max_size=50))
def test_percentiles_match_sorted_values_to_3_significant_digits(values: list[int]) -> None:
    monitor = LatencyMonitor(("round_trip",))
    for value in values:
        monitor.record_ns("round_trip", value)
    p = monitor.statistics().figures["round_trip"]
    ordered = sorted(values)
    assert p.count == len(values)
    assert within_3_significant_digits(p.max, ordered[-1])
    # HDR's p50 is the value at rank ceil(0.5 * n) (rounded half up), reported as the top of
    # its bucket.
    rank = max(int(0.5 * len(values) + 0.5), 1)
    assert within_3_significant_digits(p.p50, ordered[rank - 1])
    assert p.p50 <= p.p90 <= p.p99 <= p.p999 <= p.max


def test_percentiles_are_ordered_and_max_is_the_outlier() -> None:
    monitor = LatencyMonitor(("plant_lateness",))
    for _ in range(9999):
        monitor.record_ns("plant_lateness", 50_000)
    monitor.record_ns("plant_lateness", 7_000_000)
    p = monitor.statistics().figures["plant_lateness"]
    assert within_3_significant_digits(p.p999, 50_000)
    assert within_3_significant_digits(p.max, 7_000_000)


def test_zero_is_recorded_as_zero() -> None:
    monitor = LatencyMonitor(("compute",))
    monitor.record_ns("compute", 0)
    stats = monitor.statistics()
    assert stats.figures["compute"].p50 == 0.0
    assert stats.negative["compute"] == 0
    assert stats.clamped["compute"] == 0


def test_negative_values_are_recorded_as_zero_and_counted() -> None:
    monitor = LatencyMonitor(("round_trip", "compute"))
    monitor.record_ns("round_trip", -5)
    monitor.record_ns("round_trip", -1_000_000)
    monitor.record_ns("round_trip", 10)
    stats = monitor.statistics()
    assert stats.negative == {"round_trip": 2, "compute": 0}
    assert stats.clamped == {"round_trip": 0, "compute": 0}
    p = stats.figures["round_trip"]
    assert (p.count, p.p50, p.max) == (3, 0.0, 0.01)


def test_values_above_60_s_are_clamped_and_counted() -> None:
    monitor = LatencyMonitor(("round_trip",))
    monitor.record_ns("round_trip", HIGHEST_NS)
    monitor.record_ns("round_trip", HIGHEST_NS + 1)
    monitor.record_ns("round_trip", 10 * HIGHEST_NS)
    stats = monitor.statistics()
    assert stats.clamped == {"round_trip": 2}
    assert stats.negative == {"round_trip": 0}
    p = stats.figures["round_trip"]
    assert p.count == 3
    assert within_3_significant_digits(p.max, HIGHEST_NS)


def test_unknown_figure_raises_key_error_naming_it_and_the_known_ones() -> None:
    monitor = LatencyMonitor(("compute", "round_trip"))
    with pytest.raises(KeyError) as info:
        monitor.record_ns("comptue", 5)
    message = str(info.value)
    assert "'comptue'" in message
    assert "'compute'" in message and "'round_trip'" in message


@pytest.mark.parametrize(
    ("figures", "fragment"),
    [((), "at least one"), (("compute", "compute"), "distinct")],
)
def test_constructor_rejects_bad_figure_tuples(figures: tuple[str, ...], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        LatencyMonitor(figures)


def test_deadline_counts_misses_ratio_and_longest_run() -> None:
    monitor = LatencyMonitor()
    for met in [True, False, False, True, False, False, False, True, False]:
        monitor.record_deadline(met)
    assert monitor.statistics().deadline == DeadlineStatistics(
        total=9, misses=6, miss_ratio=6 / 9, max_consecutive=3
    )
    assert monitor.consecutive_misses == 1


def test_current_run_of_misses_resets_on_a_met_deadline() -> None:
    monitor = LatencyMonitor()
    monitor.record_deadline(False)
    monitor.record_deadline(False)
    assert monitor.consecutive_misses == 2
    monitor.record_deadline(True)
    assert monitor.consecutive_misses == 0
    assert monitor.statistics().deadline.max_consecutive == 2


def test_to_dict_is_json_with_exactly_the_documented_keys() -> None:
    monitor = LatencyMonitor()
    monitor.record_ns("compute", 2_000)
    monitor.record_deadline(False)
    data = json.loads(json.dumps(monitor.statistics().to_dict()))
    assert set(data) == {"figures", "deadline", "clamped", "negative"}
    assert set(data["figures"]) == set(DEFAULT_FIGURES)
    for figure in data["figures"].values():
        assert set(figure) == {"p50", "p90", "p99", "p999", "max", "count"}
    assert data["figures"]["compute"]["count"] == 1
    assert data["figures"]["round_trip"]["p50"] is None
    assert data["deadline"] == {"total": 1, "misses": 1, "miss_ratio": 1.0, "max_consecutive": 1}


def test_statistics_records_are_frozen() -> None:
    stats = LatencyMonitor().statistics()
    with pytest.raises(AttributeError):
        stats.deadline.misses = 3  # type: ignore[misc]
    with pytest.raises(AttributeError):
        stats.figures["compute"].count = 3  # type: ignore[misc]


def filled_monitor() -> LatencyMonitor:
    monitor = LatencyMonitor()
    for i in range(1, 200):
        monitor.record_ns("round_trip", i * 1_000)
        monitor.record_ns("compute", i * 37)
    monitor.record_ns("compute", -3)
    monitor.record_ns("plant_lateness", HIGHEST_NS * 2)
    for met in [False, False, True, False]:
        monitor.record_deadline(met)
    return monitor


def test_encode_survives_json_and_decode_rebuilds_equal_statistics() -> None:
    monitor = filled_monitor()
    encoded = json.loads(json.dumps(monitor.encode()))
    assert encoded["schema"] == ENCODING_SCHEMA
    assert all(isinstance(blob, str) for blob in encoded["histograms"].values())
    decoded = LatencyMonitor.decode(encoded)
    assert decoded.figures == monitor.figures
    assert decoded.statistics() == monitor.statistics()


def test_decode_of_an_empty_monitor_is_empty() -> None:
    decoded = LatencyMonitor.decode(LatencyMonitor(("compute",)).encode())
    assert decoded.statistics().figures == {"compute": EMPTY}


def test_merge_adds_counts_and_keeps_the_longest_run() -> None:
    plant = LatencyMonitor()
    controller = LatencyMonitor()
    for _ in range(10):
        plant.record_ns("round_trip", 100_000)
        controller.record_ns("compute", 5_000)
    controller.record_ns("round_trip", 300_000)
    plant.record_deadline(False)
    plant.record_deadline(False)
    controller.record_deadline(False)
    controller.record_deadline(True)
    controller.record_ns("compute", -1)
    controller.record_ns("compute", HIGHEST_NS + 1)

    plant.merge(LatencyMonitor.decode(controller.encode()))

    stats = plant.statistics()
    assert stats.figures["round_trip"].count == 11
    assert within_3_significant_digits(stats.figures["round_trip"].max, 300_000)
    assert stats.figures["compute"].count == 12
    assert stats.deadline == DeadlineStatistics(
        total=4, misses=3, miss_ratio=0.75, max_consecutive=2
    )
    assert stats.negative["compute"] == 1
    assert stats.clamped["compute"] == 1
    assert plant.consecutive_misses == 2


def test_merge_accepts_a_subset_of_figures() -> None:
    monitor = LatencyMonitor()
    part = LatencyMonitor(("compute",))
    part.record_ns("compute", 1_000)
    monitor.merge(part)
    assert monitor.statistics().figures["compute"].count == 1


def test_merge_rejects_figures_this_monitor_does_not_know() -> None:
    monitor = LatencyMonitor(("compute",))
    with pytest.raises(KeyError, match="'mystery'"):
        monitor.merge(LatencyMonitor(("compute", "mystery")))
    assert monitor.statistics().figures["compute"].count == 0


def test_merge_with_itself_doubles_the_counts() -> None:
    monitor = LatencyMonitor(("compute",))
    monitor.record_ns("compute", 1_000)
    monitor.merge(monitor)
    assert monitor.statistics().figures["compute"].count == 2


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda d: d.update(schema="hil-latency/0"), "schema must be"),
        (lambda d: d.pop("deadline"), "not an encoded LatencyMonitor"),
        (lambda d: d["clamped"].pop("compute"), "not an encoded LatencyMonitor"),
        (lambda d: d.update(histograms=5), "not an encoded LatencyMonitor"),
        (lambda d: d["histograms"].update(compute="not base64 at all!"), "'compute' is not an HDR"),
    ],
)
def test_decode_rejects_malformed_input_with_value_error(
    mutate: Callable[[dict[str, Any]], object], fragment: str
) -> None:
    encoded = LatencyMonitor(("compute",)).encode()
    mutate(encoded)
    with pytest.raises(ValueError, match=fragment):
        LatencyMonitor.decode(encoded)


def test_decode_rejects_a_non_mapping() -> None:
    with pytest.raises(ValueError, match="not an encoded LatencyMonitor"):
        LatencyMonitor.decode([])  # type: ignore[arg-type]


def test_decode_rejects_histograms_with_another_layout() -> None:
    microseconds = HdrHistogram(1, 60_000_000, 3)
    microseconds.record_value(100)
    encoded = LatencyMonitor(("compute",)).encode()
    encoded["histograms"]["compute"] = microseconds.encode().decode("ascii")
    with pytest.raises(ValueError, match="expected"):
        LatencyMonitor.decode(encoded)


def test_reset_forgets_values_and_deadlines() -> None:
    monitor = filled_monitor()
    monitor.reset()
    stats = monitor.statistics()
    assert all(p == EMPTY for p in stats.figures.values())
    assert stats.deadline.total == 0
    assert set(stats.clamped.values()) == {0}
    assert set(stats.negative.values()) == {0}
    assert monitor.consecutive_misses == 0
    monitor.record_ns("compute", 1_000)
    assert monitor.statistics().figures["compute"].count == 1


def test_thread_snapshots_are_consistent_while_the_loop_records() -> None:
    # The "loop" records every figure in order, then one deadline, per iteration. A snapshot
    # of one instant sees a prefix of that sequence: the counts read in the same order are
    # n + 1 for some leading figures and n for the rest. A figure-by-figure snapshot would
    # show a later figure ahead of an earlier one.
    # The loop waits once, halfway, for the reader's first snapshot: recording is faster than
    # a snapshot, and the loop could otherwise end before the reader ever ran.
    monitor = LatencyMonitor()
    iterations = 3_000
    stop = threading.Event()
    read_once = threading.Event()
    snapshots = []

    def loop() -> None:
        for i in range(iterations):
            for figure in DEFAULT_FIGURES:
                monitor.record_ns(figure, 1_000 + i)
            monitor.record_deadline(i % 7 != 0)
            if i == iterations // 2:
                read_once.wait(timeout=30)
        stop.set()

    def reader() -> None:
        while not stop.is_set():
            snapshots.append(monitor.statistics())
            read_once.set()

    threads = [threading.Thread(target=loop), threading.Thread(target=reader)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert read_once.is_set()
    snapshots.append(monitor.statistics())
    for stats in snapshots:
        counts = [stats.figures[f].count for f in DEFAULT_FIGURES] + [stats.deadline.total]
        n = counts[-1]
        assert counts == sorted(counts, reverse=True)
        assert set(counts) <= {n, n + 1}
    assert snapshots[-1].deadline.total == iterations


# Buffered recording against the per-sample path it replaced (latency_reference.py).
EDGE_NS = [0, 1, 2047, 2048, 2049, 4095, 4096, 1_000_000, HIGHEST_NS - 1, HIGHEST_NS,
           HIGHEST_NS + 1, 2**63 - 1, 2**63, 2**70, -1, -(2**63), -(2**63) - 1, -(2**70)]
SAMPLE_NS = st.one_of(st.sampled_from(EDGE_NS), st.integers(-10**6, 10**7),
                      st.integers(0, HIGHEST_NS), st.integers(-(2**72), 2**72))


def assert_same_as_per_sample(monitor: LatencyMonitor, reference: PerSampleRecorder) -> None:
    """The same encoded histograms and counts, and the statistics hdrh gives for the
    reference's histograms, to the last bit."""
    encoded = monitor.encode()
    assert encoded == reference.encode()
    stats = monitor.statistics()
    assert (stats.clamped, stats.negative) == (reference.clamped, reference.negative)
    for name, histogram in reference.histograms.items():
        count = histogram.get_total_count()
        got = stats.figures[name]
        assert got.count == count
        if count:
            values = histogram.get_percentile_to_value_dict([50.0, 90.0, 99.0, 99.9])
            assert (got.p50, got.p90, got.p99, got.p999) == tuple(
                values[p] / 1000.0 for p in (50.0, 90.0, 99.0, 99.9))
            assert got.max == histogram.get_max_value() / 1000.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["round_trip", "compute"]), SAMPLE_NS),
                max_size=3 * BUFFER_SAMPLES + 5),
       st.sets(st.integers(0, 3 * BUFFER_SAMPLES)))
def test_buffered_samples_give_what_per_sample_recording_gave(
        samples: list[tuple[str, int]], looks: set[int]) -> None:
    figures = ("round_trip", "compute")
    monitor, reference = LatencyMonitor(figures), PerSampleRecorder(figures)
    for i, (figure, value_ns) in enumerate(samples):
        monitor.record_ns(figure, value_ns)
        reference.record_ns(figure, value_ns)
        if i in looks:  # a report mid-run folds a part-full buffer
            assert_same_as_per_sample(monitor, reference)
    assert_same_as_per_sample(monitor, reference)


def test_full_buffers_fold_without_a_report() -> None:
    monitor, reference = LatencyMonitor(("compute",)), PerSampleRecorder(("compute",))
    values = [(i * 7919) % 5_000_000 - 1_000 for i in range(5 * BUFFER_SAMPLES + 3)]
    values += EDGE_NS * 3
    for value_ns in values:
        monitor.record_ns("compute", value_ns)
        reference.record_ns("compute", value_ns)
    assert_same_as_per_sample(monitor, reference)


def test_merging_monitors_with_buffered_samples_adds_them_all() -> None:
    plant, controller = LatencyMonitor(), LatencyMonitor()
    reference = PerSampleRecorder(DEFAULT_FIGURES)
    for i in range(BUFFER_SAMPLES + 10):
        plant.record_ns("round_trip", 50_000 + i)
        controller.record_ns("round_trip", 70_000 - 3 * i)
        reference.record_ns("round_trip", 50_000 + i)
        reference.record_ns("round_trip", 70_000 - 3 * i)
    controller.record_ns("compute", -4)
    reference.record_ns("compute", -4)
    plant.merge(controller)
    assert_same_as_per_sample(plant, reference)
