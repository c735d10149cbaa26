"""Fixtures shared by the whole suite."""

from __future__ import annotations

import socket

import pytest
from hypothesis import settings

# Hypothesis's per-example deadline (200 ms) is a timing check, and this suite runs on shared
# 2-core machines beside other work, where one example can take 270 ms once and 14 ms when
# replayed (a FlakyFailure that says nothing of the code). Speed targets live in benchmarks/.
settings.register_profile("shared-machine", deadline=None)
settings.load_profile("shared-machine")


def free_endpoint() -> str:
    """A loopback TCP endpoint on a port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def endpoint() -> str:
    return free_endpoint()


# For `hil run` end-to-end tests that look at neither the HTML report nor the run history:
# no plots (about 2 s a run under coverage) and no rows in the checkout's runs/history.db.
NO_HTML = ("--set", "record.html=false", "--set", "record.history_db=null")


# A realtime run's two timing gates: judged by the benchmarks, not by functional end-to-end
# tests on this shared 2-core machine (a 1 kHz run under coverage missed 1.1-1.3 % at times).
TIMING_GATES = frozenset({"deadline_miss_ratio", "round_trip_p99"})


def assert_passed_but_timing(report: dict) -> None:
    """Every gate of `report` passed except perhaps the timing gates, which are consistent
    with their figures (so a failed one fails for its figure, not for a bug)."""
    failed = [g for g in report["gates"] if not g["passed"] and g["name"] not in TIMING_GATES]
    assert not failed, failed
    gates = {g["name"]: g for g in report["gates"]}
    misses = gates["deadline_miss_ratio"]
    assert misses["passed"] == (report["deadline"]["miss_ratio"] <= misses["threshold"])
    if "round_trip_p99" in gates:
        p99 = gates["round_trip_p99"]
        assert p99["passed"] == (report["latency_us"]["round_trip"]["p99"] <= p99["threshold"])
