"""Tests for hil.runtime.watchdog: arming, feeding, expiry, the latch, trips and statistics."""

from __future__ import annotations

import json

import pytest

from hil.runtime.watchdog import Trip, Watchdog, WatchdogStatistics

TIMEOUT_NS = 10_000_000  # 10 ms


class FakeClock:
    def __init__(self, now_ns: int = 1_000_000_000) -> None:
        self.now_ns = now_ns

    def __call__(self) -> int:
        return self.now_ns


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def armed(clock: FakeClock) -> Watchdog:
    watchdog = Watchdog(TIMEOUT_NS, clock=clock)
    watchdog.arm()
    return watchdog


def trip(watchdog: Watchdog, clock: FakeClock) -> None:
    clock.now_ns = watchdog.deadline_ns  # type: ignore[assignment]
    assert watchdog.check()


@pytest.mark.parametrize("timeout_ns", [0, -5])
def test_timeout_must_be_positive_and_the_message_names_it(timeout_ns: int) -> None:
    with pytest.raises(ValueError, match=rf"^timeout_ns must be > 0, got {timeout_ns}$"):
        Watchdog(timeout_ns)


def test_default_clock_is_monotonic_and_a_fresh_watchdog_is_not_running() -> None:
    watchdog = Watchdog(TIMEOUT_NS)
    assert not watchdog.armed
    assert watchdog.deadline_ns is None
    assert not watchdog.check()
    watchdog.arm()
    assert not watchdog.check()


def test_not_running_before_arm_never_expires_and_ignores_feeds(clock: FakeClock) -> None:
    watchdog = Watchdog(TIMEOUT_NS, clock=clock)
    clock.now_ns += 100 * TIMEOUT_NS
    assert not watchdog.check()
    assert not watchdog.feed()
    assert not watchdog.latched
    assert watchdog.statistics().feeds == 0


def test_arm_sets_the_deadline_one_timeout_from_now(clock: FakeClock, armed: Watchdog) -> None:
    assert armed.armed
    assert armed.timeout_ns == TIMEOUT_NS
    assert armed.deadline_ns == clock.now_ns + TIMEOUT_NS


def test_arm_twice_raises(armed: Watchdog) -> None:
    with pytest.raises(RuntimeError, match="already armed"):
        armed.arm()


def test_expires_exactly_at_the_deadline(clock: FakeClock, armed: Watchdog) -> None:
    clock.now_ns += TIMEOUT_NS - 1
    assert not armed.check()
    clock.now_ns += 1
    assert armed.check()
    assert armed.latched


def test_feed_reloads_the_deadline(clock: FakeClock, armed: Watchdog) -> None:
    for _ in range(5):
        clock.now_ns += TIMEOUT_NS - 1
        assert armed.feed()
        assert armed.deadline_ns == clock.now_ns + TIMEOUT_NS
        assert not armed.check()
    assert armed.statistics().feeds == 5


def test_trip_records_last_feed_detection_and_time_to_detect(
    clock: FakeClock, armed: Watchdog
) -> None:
    clock.now_ns += 3_000_000
    armed.feed()
    last_feed_ns = clock.now_ns
    clock.now_ns += TIMEOUT_NS + 250_000  # the plant checks a quarter-period late
    assert armed.check()
    assert armed.last_trip == Trip(last_feed_ns=last_feed_ns, detected_ns=clock.now_ns)
    assert armed.last_trip.time_to_detect_ns == TIMEOUT_NS + 250_000


def test_latched_watchdog_keeps_reporting_expired(clock: FakeClock, armed: Watchdog) -> None:
    trip(armed, clock)
    first = armed.last_trip
    for _ in range(3):
        clock.now_ns += 1_000_000
        assert armed.check()
    assert armed.last_trip is first
    assert armed.statistics().trips == 1


def test_feeds_while_latched_are_ignored_and_counted(clock: FakeClock, armed: Watchdog) -> None:
    trip(armed, clock)
    deadline_ns = armed.deadline_ns
    assert not armed.feed()
    assert not armed.feed()
    assert armed.latched
    assert armed.deadline_ns == deadline_ns
    stats = armed.statistics()
    assert (stats.feeds, stats.feeds_ignored_while_latched) == (0, 2)


def test_a_late_feed_does_not_revive_an_expired_watchdog(clock: FakeClock, armed: Watchdog) -> None:
    armed_at_ns = clock.now_ns
    clock.now_ns += TIMEOUT_NS + 5
    assert not armed.feed()
    assert armed.latched
    assert armed.check()
    assert armed.last_trip == Trip(last_feed_ns=armed_at_ns, detected_ns=clock.now_ns)
    assert armed.statistics().feeds_ignored_while_latched == 1


def test_clear_is_the_only_way_out_and_rearms_with_a_fresh_deadline(
    clock: FakeClock, armed: Watchdog
) -> None:
    trip(armed, clock)
    clock.now_ns += 50_000_000
    assert armed.clear()
    assert not armed.latched
    assert armed.deadline_ns == clock.now_ns + TIMEOUT_NS
    assert not armed.check()
    assert armed.feed()
    clock.now_ns += TIMEOUT_NS
    assert armed.check()
    assert armed.statistics().trips == 2


def test_clear_when_not_latched_is_a_no_op(clock: FakeClock, armed: Watchdog) -> None:
    deadline_ns = armed.deadline_ns
    clock.now_ns += TIMEOUT_NS - 1
    assert not armed.clear()
    assert armed.deadline_ns == deadline_ns
    clock.now_ns += 1
    assert armed.check()


def test_worst_time_to_safe_uses_detection_when_no_safe_output_is_stamped(
    clock: FakeClock, armed: Watchdog
) -> None:
    assert armed.statistics().worst_time_to_safe_ms is None
    clock.now_ns += TIMEOUT_NS + 2_000_000
    armed.check()
    assert armed.statistics().worst_time_to_safe_ms == 12.0


def test_note_safe_output_measures_last_feed_to_safe_output(
    clock: FakeClock, armed: Watchdog
) -> None:
    trip(armed, clock)
    detected_ns = clock.now_ns
    assert armed.note_safe_output(detected_ns + 3_000_000)
    assert armed.last_trip.safe_output_ns == detected_ns + 3_000_000
    assert armed.last_trip.time_to_safe_ns == TIMEOUT_NS + 3_000_000
    assert armed.statistics().worst_time_to_safe_ms == 13.0


def test_only_the_first_safe_output_of_a_trip_counts(clock: FakeClock, armed: Watchdog) -> None:
    trip(armed, clock)
    assert armed.note_safe_output(clock.now_ns + 1_000_000)
    assert not armed.note_safe_output(clock.now_ns + 9_000_000)
    assert armed.statistics().worst_time_to_safe_ms == 11.0


def test_note_safe_output_without_a_latched_trip_is_ignored(
    clock: FakeClock, armed: Watchdog
) -> None:
    assert not armed.note_safe_output(clock.now_ns)
    trip(armed, clock)
    armed.clear()
    assert not armed.note_safe_output(clock.now_ns)
    assert armed.last_trip.safe_output_ns is None


def test_note_safe_output_before_detection_is_rejected(clock: FakeClock, armed: Watchdog) -> None:
    trip(armed, clock)
    with pytest.raises(ValueError, match="t_ns must be >="):
        armed.note_safe_output(clock.now_ns - 1)


def test_worst_time_to_safe_is_the_maximum_over_trips(clock: FakeClock, armed: Watchdog) -> None:
    clock.now_ns += TIMEOUT_NS + 7_000_000
    armed.check()
    armed.note_safe_output(clock.now_ns + 1_000_000)  # 18 ms
    armed.clear()
    clock.now_ns += TIMEOUT_NS
    armed.check()  # 10 ms, no stamp
    assert armed.statistics().worst_time_to_safe_ms == 18.0


def test_statistics_is_a_frozen_record_with_json_ready_to_dict(
    clock: FakeClock, armed: Watchdog
) -> None:
    armed.feed()
    trip(armed, clock)
    armed.feed()
    stats = armed.statistics()
    assert stats == WatchdogStatistics(
        trips=1,
        timeout_ms=10.0,
        worst_time_to_safe_ms=10.0,
        latched=True,
        feeds=1,
        feeds_ignored_while_latched=1,
    )
    assert json.loads(json.dumps(stats.to_dict())) == {
        "trips": 1,
        "timeout_ms": 10.0,
        "worst_time_to_safe_ms": 10.0,
        "latched": True,
        "feeds": 1,
        "feeds_ignored_while_latched": 1,
    }
    with pytest.raises(AttributeError):
        stats.trips = 0  # type: ignore[misc]
