"""Absolute-deadline schedule: no drift, overruns skipped and counted, never caught up."""

from __future__ import annotations

import pytest

from hil.runtime.schedule import Schedule


def test_deadlines_are_absolute_so_late_wakeups_do_not_drift() -> None:
    s = Schedule(t0_ns=1_000, period_ns=100)
    for k in range(1, 50):
        s.advance(now_ns=s.deadline_ns + 37)  # always 37 ns late
        assert s.deadline_ns == 1_000 + k * 100
    assert s.skipped == 0


def test_whole_missed_periods_are_skipped_and_counted() -> None:
    s = Schedule(t0_ns=0, period_ns=100)
    skipped = s.advance(now_ns=350)  # tick 0 ended at 350: the periods of ticks 1, 2 are over
    assert skipped == 2
    assert s.deadline_ns == 300 and s.skipped == 2  # tick 3's period is running: run it, late
    assert s.ticks == 1


def test_a_tick_less_than_one_period_late_skips_nothing() -> None:
    s = Schedule(t0_ns=0, period_ns=100)
    assert s.advance(now_ns=199) == 0
    assert s.deadline_ns == 100


def test_period_must_be_positive() -> None:
    with pytest.raises(ValueError, match="period_ns must be > 0, got 0"):
        Schedule(0, 0)
