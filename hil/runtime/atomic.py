"""A small lock-backed atomic counter shared by threads (the controller registry's counts).

Guarantee: every operation of every object here is linearizable, because it runs entirely
under that object's own `threading.Lock` — it takes effect at one instant between its call
and its return, and compound operations (`increment`, `add`, `get_and_add`) are indivisible.

This holds on CPython with the GIL and on free-threaded CPython (3.13t and later). Without
the GIL, `x += 1` on a shared attribute is a read, an add and a write that other threads can
interleave, so increments get lost; with the GIL it is still not promised atomic, as a
thread switch can fall between the bytecodes. The lock makes it so on both.

Reads take the lock too. A read is a single load, but on a free-threaded build nothing else
orders it against the writes of other threads: acquiring the lock the writer released makes
the reader see that write and everything the writer did before it (the lock's
acquire/release is the memory barrier), and keeps a read from landing in the middle of a
compound operation.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

__all__ = ["AtomicCounter"]

T = TypeVar("T")


class _Cell(Generic[T]):
    """A value guarded by its own lock; `get` and `set` run under it."""

    __slots__ = ("_lock", "_value")

    def __init__(self, value: T) -> None:
        self._lock = threading.Lock()
        self._value = value

    def get(self) -> T:
        with self._lock:
            return self._value

    def set(self, value: T) -> None:
        with self._lock:
            self._value = value

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.get()!r})"


class AtomicCounter(_Cell[int]):
    """An integer counter; every operation is linearizable (it runs under the lock)."""

    __slots__ = ()

    def __init__(self, value: int = 0) -> None:
        super().__init__(value)

    def increment(self) -> int:
        """Add 1; return the new value."""
        return self.add(1)

    def add(self, delta: int) -> int:
        """Add `delta`; return the new value."""
        with self._lock:
            self._value += delta
            return self._value

    def get_and_add(self, delta: int) -> int:
        """Add `delta`; return the value before the add."""
        with self._lock:
            previous = self._value
            self._value = previous + delta
            return previous
