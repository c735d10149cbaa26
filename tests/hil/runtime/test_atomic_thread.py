"""Tests for hil.runtime.atomic: single-thread semantics, then exactness under thread contention.

Every test name contains "thread" so `pytest -k thread` selects them. The contention tests
shrink the interpreter's switch interval so threads interleave as often as they can. On GIL
builds (3.10+) a thread switch happens only at calls and backward jumps, so an unlocked
`x += 1` rarely loses an update there; these tests bite hardest on free-threaded builds.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator

import pytest

from hil.runtime.atomic import AtomicCounter, AtomicFlag, AtomicReference

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


def test_single_thread_flag_operations() -> None:
    flag = AtomicFlag()
    assert not flag.is_set()
    assert flag.test_and_set() is False
    assert flag.test_and_set() is True
    assert flag.is_set()
    flag.clear()
    assert not flag.is_set()
    flag.set()
    assert flag.is_set()
    assert repr(flag) == "AtomicFlag(True)"
    assert AtomicFlag(True).is_set()


def test_single_thread_reference_compares_by_identity_not_equality() -> None:
    first = [1, 2]
    equal_copy = [1, 2]
    reference = AtomicReference(first)
    assert reference.get() is first
    assert not reference.compare_and_set(equal_copy, [3])
    assert reference.get() is first
    second = [3]
    assert reference.compare_and_set(first, second)
    assert reference.get() is second
    assert reference.get_and_set(first) is second
    reference.set(equal_copy)
    assert reference.get() is equal_copy
    assert repr(reference) == "AtomicReference([1, 2])"


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


def test_thread_compare_and_set_race_has_exactly_one_winner_per_round() -> None:
    rounds = 300
    reference: AtomicReference[object] = AtomicReference(object())
    round_barrier = threading.Barrier(THREADS)
    wins = [[False] * rounds for _ in range(THREADS)]

    def race(index: int) -> None:
        for r in range(rounds):
            seen = reference.get()
            round_barrier.wait()  # everyone has read the same object before anyone swaps
            wins[index][r] = reference.compare_and_set(seen, object())
            round_barrier.wait()  # the round is over before anyone reads again

    run_threads(race)
    winners_per_round = [sum(wins[i][r] for i in range(THREADS)) for r in range(rounds)]
    assert winners_per_round == [1] * rounds


def test_thread_compare_and_set_loop_loses_no_update() -> None:
    reference: AtomicReference[tuple[int, ...]] = AtomicReference(())
    per_thread = 500

    def append(index: int) -> None:
        for j in range(per_thread):
            while True:
                current = reference.get()
                if reference.compare_and_set(current, (*current, index * per_thread + j)):
                    break

    run_threads(append)
    assert sorted(reference.get()) == list(range(THREADS * per_thread))


def test_thread_get_and_set_never_loses_or_duplicates_a_value() -> None:
    initial = ("initial",)
    reference: AtomicReference[tuple[object, ...]] = AtomicReference(initial)
    per_thread = 5_000
    returned: list[list[tuple[object, ...]]] = [[] for _ in range(THREADS)]

    def swap(index: int) -> None:
        mine = returned[index]
        for j in range(per_thread):
            mine.append(reference.get_and_set((index, j)))

    run_threads(swap)
    seen = Counter(value for mine in returned for value in mine)
    seen[reference.get()] += 1
    set_values = {(i, j) for i in range(THREADS) for j in range(per_thread)}
    assert set(seen) == set_values | {initial}
    assert set(seen.values()) == {1}


def test_thread_flag_test_and_set_has_exactly_one_winner_per_round() -> None:
    rounds = 300
    flag = AtomicFlag()
    round_barrier = threading.Barrier(THREADS, action=flag.clear)
    wins = [[False] * rounds for _ in range(THREADS)]

    def race(index: int) -> None:
        for r in range(rounds):
            round_barrier.wait()  # the flag is cleared as the last thread arrives
            wins[index][r] = not flag.test_and_set()

    run_threads(race)
    winners_per_round = [sum(wins[i][r] for i in range(THREADS)) for r in range(rounds)]
    assert winners_per_round == [1] * rounds
    assert flag.is_set()


def test_thread_readers_never_see_a_counter_go_backwards() -> None:
    counter = AtomicCounter()
    done = AtomicFlag()
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
