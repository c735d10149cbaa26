"""Per-key rate limiting of repetitive events such as overrun warnings and malformed input.

`RateLimiter.allow(key)` is True at most once per `interval_ns` for each key and counts the
events it suppresses, so the next allowed log line can say how many it stands for:

    if limiter.allow("overrun"):
        log.warning("overrun", suppressed=limiter.take_suppressed("overrun"))

Memory is bounded: at most `max_keys` keys are tracked, in order of first appearance. Once
the table is full, every other key shares one overflow slot, `OVERFLOW_KEY`, that is rate
limited like a key of its own — so a flood of distinct keys still yields at most
`max_keys + 1` allowed events per interval. Time comes from the injected clock, in integer
nanoseconds.

Not thread-safe: use one limiter per thread, or guard it with a lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

__all__ = ["OVERFLOW_KEY", "RateLimiter"]

OVERFLOW_KEY = "<overflow>"


class _Slot:
    __slots__ = ("last_allowed_ns", "suppressed")

    def __init__(self) -> None:
        self.last_allowed_ns: int | None = None
        self.suppressed = 0


class RateLimiter:
    """Allows each key at most once per `interval_ns`; see the module docstring."""

    def __init__(
        self,
        interval_ns: int = 1_000_000_000,
        clock: Callable[[], int] = time.monotonic_ns,
        max_keys: int = 64,
    ) -> None:
        if interval_ns <= 0:
            raise ValueError(f"interval_ns must be > 0, got {interval_ns}")
        if max_keys <= 0:
            raise ValueError(f"max_keys must be > 0, got {max_keys}")
        self._interval_ns = interval_ns
        self._clock = clock
        self._max_keys = max_keys
        self._slots: dict[Hashable, _Slot] = {}
        self._overflow = _Slot()

    @property
    def interval_ns(self) -> int:
        return self._interval_ns

    @property
    def max_keys(self) -> int:
        return self._max_keys

    @property
    def tracked_keys(self) -> int:
        """How many keys have their own slot (at most `max_keys`)."""
        return len(self._slots)

    def allow(self, key: Hashable) -> bool:
        """True if `key` was not allowed in the last `interval_ns`; else count it suppressed."""
        slot = self._slot(key, create=True)
        now_ns = self._clock()
        last_ns = slot.last_allowed_ns
        if last_ns is not None and now_ns - last_ns < self._interval_ns:
            slot.suppressed += 1
            return False
        slot.last_allowed_ns = now_ns
        return True

    def suppressed(self, key: Hashable) -> int:
        """Events of `key` suppressed since the last `take_suppressed(key)`.

        For a key without a slot of its own while the table is full, that of `OVERFLOW_KEY`.
        """
        return self._slot(key, create=False).suppressed

    def take_suppressed(self, key: Hashable) -> int:
        """Return `suppressed(key)` and reset it to 0."""
        slot = self._slot(key, create=False)
        count = slot.suppressed
        slot.suppressed = 0
        return count

    def _slot(self, key: Hashable, *, create: bool) -> _Slot:
        slot = self._slots.get(key)
        if slot is not None:
            return slot
        if key == OVERFLOW_KEY or len(self._slots) >= self._max_keys:
            return self._overflow
        slot = _Slot()
        if create:
            self._slots[key] = slot
        return slot
