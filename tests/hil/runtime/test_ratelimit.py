"""Tests for hil.runtime.ratelimit: once per interval per key, suppressed counts, the key cap."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hil.runtime.ratelimit import OVERFLOW_KEY, RateLimiter

SECOND_NS = 1_000_000_000


@pytest.fixture
def now() -> list[int]:
    """The fake time in ns: tests move it with `now[0] += ...`."""
    return [5 * SECOND_NS]


def reading(now: list[int]) -> Callable[[], int]:
    return lambda: now[0]


@pytest.fixture
def limiter(now: list[int]) -> RateLimiter:
    return RateLimiter(clock=reading(now))


def test_defaults_are_one_second_and_64_keys_on_the_monotonic_clock() -> None:
    limiter = RateLimiter()
    assert (limiter.interval_ns, limiter.max_keys) == (SECOND_NS, 64)
    assert limiter.allow("overrun")
    assert not limiter.allow("overrun")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"interval_ns": 0}, "interval_ns must be > 0, got 0"),
        ({"interval_ns": -5}, "interval_ns must be > 0, got -5"),
        ({"max_keys": 0}, "max_keys must be > 0, got 0"),
    ],
)
def test_arguments_are_validated_with_messages_naming_them(
    kwargs: dict[str, int], message: str
) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        RateLimiter(**kwargs)


def test_allows_the_first_event_then_once_per_interval(
    now: list[int], limiter: RateLimiter
) -> None:
    assert limiter.allow("overrun")
    now[0] += SECOND_NS - 1
    assert not limiter.allow("overrun")
    now[0] += 1
    assert limiter.allow("overrun")
    assert not limiter.allow("overrun")


def test_the_interval_runs_from_the_last_allowed_event_not_the_last_event(
    now: list[int], limiter: RateLimiter
) -> None:
    assert limiter.allow("k")
    for _ in range(10):
        now[0] += SECOND_NS // 10 - 1
        assert not limiter.allow("k")
    now[0] += 10
    assert limiter.allow("k")


def test_keys_are_limited_independently(now: list[int], limiter: RateLimiter) -> None:
    assert limiter.allow("overrun")
    assert limiter.allow(("malformed", "plant"))
    assert not limiter.allow("overrun")
    assert not limiter.allow(("malformed", "plant"))
    assert limiter.tracked_keys == 2


def test_suppressed_events_are_counted_until_taken(now: list[int], limiter: RateLimiter) -> None:
    limiter.allow("overrun")
    for _ in range(37):
        limiter.allow("overrun")
    limiter.allow("other")
    assert limiter.suppressed("overrun") == 37
    assert limiter.suppressed("other") == 0
    now[0] += SECOND_NS
    assert limiter.allow("overrun")
    assert limiter.take_suppressed("overrun") == 37
    assert limiter.suppressed("overrun") == 0
    assert limiter.take_suppressed("overrun") == 0


def test_the_log_line_pattern_reports_each_window_once(
    now: list[int], limiter: RateLimiter
) -> None:
    lines = []
    for tick in range(3000):  # 3 s of 1 kHz overruns
        now[0] = tick * 1_000_000
        if limiter.allow("overrun"):
            lines.append(limiter.take_suppressed("overrun"))
    assert lines == [0, 999, 999]


def test_unknown_keys_have_nothing_suppressed(limiter: RateLimiter) -> None:
    assert limiter.suppressed("never-seen") == 0
    assert limiter.take_suppressed("never-seen") == 0
    assert limiter.tracked_keys == 0


def test_keys_past_the_cap_share_the_overflow_slot(now: list[int]) -> None:
    limiter = RateLimiter(clock=reading(now), max_keys=3)
    for key in ("a", "b", "c"):
        assert limiter.allow(key)
    assert limiter.allow("d")  # the overflow slot's first event
    assert not limiter.allow("e")  # same slot, same interval
    assert not limiter.allow("d")
    assert limiter.tracked_keys == 3
    assert limiter.suppressed("e") == 2
    assert limiter.suppressed(OVERFLOW_KEY) == 2
    assert limiter.suppressed("a") == 0
    assert limiter.take_suppressed("never-seen-either") == 2
    assert limiter.suppressed(OVERFLOW_KEY) == 0
    now[0] += SECOND_NS
    assert limiter.allow("f")


def test_a_flood_of_distinct_keys_is_bounded_in_memory_and_in_output(
    now: list[int],
) -> None:
    limiter = RateLimiter(clock=reading(now), max_keys=64)
    allowed = sum(limiter.allow(f"peer-{i}") for i in range(10_000))
    assert allowed == 64 + 1
    assert limiter.tracked_keys == 64
    assert limiter.suppressed(OVERFLOW_KEY) == 10_000 - 65


def test_tracked_keys_keep_their_own_slot_after_the_table_fills(now: list[int]) -> None:
    limiter = RateLimiter(clock=reading(now), max_keys=2)
    limiter.allow("a")
    limiter.allow("b")
    limiter.allow("c")
    limiter.allow("a")
    assert limiter.suppressed("a") == 1
    assert limiter.suppressed("c") == 0


def test_the_overflow_key_itself_never_takes_a_tracked_slot(now: list[int]) -> None:
    limiter = RateLimiter(clock=reading(now), max_keys=2)
    assert limiter.allow(OVERFLOW_KEY)
    assert limiter.tracked_keys == 0
    assert limiter.allow("a")
    assert limiter.allow("b")
    assert not limiter.allow("c")
    assert limiter.suppressed(OVERFLOW_KEY) == 1
