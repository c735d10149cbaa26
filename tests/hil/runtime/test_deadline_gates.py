"""Deadline gates: sliding-window miss ratio and consecutive misses, warn or safe-stop, warnings
rate-limited to one a second per gate (a mock clock drives the limiter)."""

from __future__ import annotations

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from hil.runtime.deadline_gates import (
    CONSECUTIVE,
    WINDOW_RATIO,
    DeadlineGates,
    DeadlineGateSettings,
)


class Clock:
    def __init__(self) -> None:
        self.t = 0

    def __call__(self) -> int:
        return self.t


def gates(window: int = 10, ratio: float = 0.2, consecutive: int = 3,
          ratio_policy: str = "safe_stop", consecutive_policy: str = "safe_stop",
          clock: Clock | None = None, log: object = None) -> DeadlineGates:
    settings = DeadlineGateSettings(window, ratio, ratio_policy, consecutive,
                                    consecutive_policy)
    return DeadlineGates(settings, log=log, clock=clock or Clock())


def test_ratio_gate_waits_for_a_full_window_then_trips_above_the_limit() -> None:
    g = gates(window=10, ratio=0.2, consecutive=100)
    outcomes = [False, False, False] + [True] * 6  # 3 misses in 9: window not full yet
    assert [g.record(m) for m in outcomes] == [None] * 9
    breach = g.record(True)  # 3 of 10 > 0.2
    assert breach is not None
    assert (breach.gate, breach.value, breach.limit, breach.policy) == (
        WINDOW_RATIO, pytest.approx(0.3), 0.2, "safe_stop")


def test_ratio_gate_slides_old_misses_out_of_the_window() -> None:
    g = gates(window=4, ratio=0.5, consecutive=100)
    for met in (False, False, True, True):
        g.record(met)
    assert g.window_miss_ratio == 0.5
    g.record(True)
    g.record(True)
    assert g.window_miss_ratio == 0.0
    assert g.statistics()["max_window_miss_ratio"] == 0.5


def test_consecutive_gate_trips_once_per_run_of_misses() -> None:
    g = gates(window=1000, consecutive=3)
    results = [g.record(False) for _ in range(6)]
    assert results[:3] == [None] * 3
    assert results[3] is not None and results[3].gate == CONSECUTIVE
    assert results[3].value == 4 and results[3].limit == 3
    assert results[4:] == [None, None]  # still the same breach
    g.record(True)
    assert [g.record(False) for _ in range(4)][-1] is not None  # a new run, a new breach
    assert g.statistics()["breaches"][CONSECUTIVE] == 2
    assert g.statistics()["max_consecutive_misses"] == 6


def test_warn_policy_never_asks_for_a_safe_stop_but_counts_the_breach() -> None:
    g = gates(window=2, ratio=0.0, consecutive=1, ratio_policy="warn", consecutive_policy="warn")
    assert all(g.record(False) is None for _ in range(10))
    assert g.statistics()["breaches"] == {WINDOW_RATIO: 1, CONSECUTIVE: 1}


def test_warnings_are_rate_limited_to_one_a_second_per_gate() -> None:
    clock = Clock()
    log = structlog.get_logger()
    with capture_logs() as logs:
        g = gates(window=1000, consecutive=1, consecutive_policy="warn", clock=clock, log=log)
        for _ in range(500):  # 500 ms of misses at 1 kHz
            g.record(False)
            clock.t += 1_000_000
        first = [e for e in logs if e.get("gate") == CONSECUTIVE]
        for _ in range(600):
            g.record(False)
            clock.t += 1_000_000
    warned = [e for e in logs if e.get("gate") == CONSECUTIVE]
    assert len(first) == 1
    assert len(warned) == 2
    assert warned[1]["event"] == "deadline gate breached" and warned[1]["suppressed"] > 900
    assert g.statistics()["warnings_logged"] == 3  # and one for the ratio gate


def test_reset_forgets_the_window_so_a_clear_starts_afresh() -> None:
    g = gates(window=3, ratio=0.5, consecutive=2)
    for _ in range(3):
        g.record(False)
    g.reset()
    assert g.window_miss_ratio == 0.0
    assert [g.record(False) for _ in range(2)] == [None, None]
    assert g.statistics()["deadlines"] == 5


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"window": 0}, "window must be >= 1 deadline, got 0"),
    ({"max_miss_ratio": 1.5}, r"max_miss_ratio must be in \[0, 1\], got 1.5"),
    ({"max_consecutive": 0}, "max_consecutive must be >= 1, got 0"),
    ({"consecutive_policy": "panic"}, "consecutive_policy must be one of"),
])
def test_settings_name_the_bad_value(kwargs: dict, message: str) -> None:
    base = {"window": 10, "max_miss_ratio": 0.1, "miss_ratio_policy": "warn",
            "max_consecutive": 3, "consecutive_policy": "warn"}
    with pytest.raises(ValueError, match=message):
        DeadlineGateSettings(**{**base, **kwargs})


def _reference(outcomes: list[bool], window: int, ratio: float, consecutive: int
               ) -> tuple[list[str | None], float, int, dict[str, int]]:
    """The gates as their docstring defines them, judged from the whole list at each step:
    the gate each record newly breaches (safe_stop), the largest full-window ratio, the
    longest run of misses and the breach counts."""
    returned: list[str | None] = []
    run = longest = 0
    worst = 0.0
    in_breach = {WINDOW_RATIO: False, CONSECUTIVE: False}
    breaches = {WINDOW_RATIO: 0, CONSECUTIVE: 0}
    for k, met in enumerate(outcomes):
        recent = outcomes[max(0, k + 1 - window):k + 1]
        full = len(recent) == window
        share = recent.count(False) / len(recent)
        run = 0 if met else run + 1
        longest = max(longest, run)
        worst = max(worst, share) if full else worst
        new = None
        for gate, out in ((WINDOW_RATIO, full and share > ratio),
                          (CONSECUTIVE, run > consecutive)):
            if out and not in_breach[gate]:
                breaches[gate] += 1
                new = new or gate
            in_breach[gate] = out
        returned.append(new)
    return returned, worst, longest, breaches


@settings(max_examples=300, deadline=None, derandomize=True)
@given(outcomes=st.lists(st.booleans(), max_size=300), window=st.integers(1, 40),
       ratio=st.sampled_from([0.0, 0.1, 0.25, 0.5, 1.0]), consecutive=st.integers(1, 8))
def test_every_record_agrees_with_the_gates_judged_from_scratch(
        outcomes: list[bool], window: int, ratio: float, consecutive: int) -> None:
    """The short path of a met deadline (nothing to judge) changes no verdict and no figure."""
    g = gates(window=window, ratio=ratio, consecutive=consecutive)
    got = [g.record(met) for met in outcomes]
    returned, worst, longest, breaches = _reference(outcomes, window, ratio, consecutive)
    assert [b.gate if b is not None else None for b in got] == returned
    stats = g.statistics()
    assert stats["max_window_miss_ratio"] == pytest.approx(worst)
    assert stats["max_consecutive_misses"] == longest and stats["breaches"] == breaches
