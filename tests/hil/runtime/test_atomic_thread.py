"""Tests for hil.runtime.atomic: single-thread semantics, then exactness under thread contention.

Every test name contains "thread" so `pytest -k thread` selects them. The contention tests
shrink the interpreter's switch interval so threads interleave as often as they can. On GIL
builds (3.10+) a thread switch happens only at calls and backward jumps, so an unlocked
`x += 1` rarely loses an update there; these tests bite hardest on free-threaded builds.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator

import pytest

from hil.runtime.atomic import AtomicCounter

THREADS = 8


@pytest.fixture(autouse=True)
def frequent_thread_switches() -> Iterator[None]:
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)


def run_threads(target: Callable[[int], None], count: int = THREADS) -> None:
    """Run `target(index)` in `count` threads started together; re-raise the first failure."""
    start = threading.Barrier(count)
    errors: list[BaseException] = []

    def body(index: int) -> None:
        try:
            start.wait()
            target(index)
        except BaseException as exc:
            errors.append(exc)
            start.abort()

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    if errors:
        raise errors[0]


def test_single_thread_counter_operations() -> None:
    counter = AtomicCounter()
    assert counter.get() == 0
    assert counter.increment() == 1
    assert counter.add(5) == 6
    assert counter.add(-2) == 4
    assert counter.get_and_add(10) == 4
    assert counter.get() == 14
    counter.set(-3)
    assert counter.get() == -3
    assert repr(counter) == "AtomicCounter(-3)"
    assert AtomicCounter(7).get() == 7


def test_thread_contended_increments_are_exact() -> None:
    counter = AtomicCounter()
    per_thread = 20_000

    def increment(_: int) -> None:
        for _ in range(per_thread):
            counter.increment()

    run_threads(increment)
    assert counter.get() == THREADS * per_thread


def test_thread_contended_adds_of_mixed_signs_are_exact() -> None:
    counter = AtomicCounter(1_000)
    per_thread = 5_000

    def add(index: int) -> None:
        delta = 3 if index % 2 else -1
        for _ in range(per_thread):
            counter.add(delta)

    run_threads(add)
    assert counter.get() == 1_000 + per_thread * (THREADS // 2) * (3 - 1)


def test_thread_get_and_add_hands_out_every_ticket_exactly_once() -> None:
    counter = AtomicCounter()
    per_thread = 5_000
    tickets: list[list[int]] = [[] for _ in range(THREADS)]

    def take(index: int) -> None:
        mine = tickets[index]
        for _ in range(per_thread):
            mine.append(counter.get_and_add(1))

    run_threads(take)
    every = sorted(t for mine in tickets for t in mine)
    assert every == list(range(THREADS * per_thread))
    assert all(mine == sorted(mine) for mine in tickets)


def test_thread_readers_never_see_a_counter_go_backwards() -> None:
    counter = AtomicCounter()
    done = threading.Event()
    regressions = AtomicCounter()

    def work(index: int) -> None:
        if index == 0:
            for _ in range(20_000):
                counter.increment()
            done.set()
            return
        last = 0
        while not done.is_set():
            value = counter.get()
            if value < last:
                regressions.increment()
            last = value

    run_threads(work, count=4)
    assert regressions.get() == 0
    assert counter.get() == 20_000
