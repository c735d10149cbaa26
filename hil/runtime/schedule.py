"""Absolute-deadline schedule for fixed-rate loops.

Deadlines are `t0_ns + k * period_ns`, never "now + period": a late wake-up does not shift
the rest of the run. When a tick is so late that whole periods have passed, those cycles are
skipped and counted, never caught up in a burst (as ros2_control's controller manager does).
"""

from __future__ import annotations


class Schedule:
    """Tick k is due at `t0_ns + k * period_ns`."""

    def __init__(self, t0_ns: int, period_ns: int) -> None:
        if period_ns <= 0:
            raise ValueError(f"period_ns must be > 0, got {period_ns}")
        self.t0_ns = t0_ns
        self.period_ns = period_ns
        self.index = 0
        self.ticks = 0
        self.skipped = 0

    @property
    def deadline_ns(self) -> int:
        """When the current tick is due."""
        return self.t0_ns + self.index * self.period_ns

    def advance(self, now_ns: int) -> int:
        """Move to the next tick due after the one just run; return how many were skipped.

        If `now_ns` is already past the next deadline by one period or more, the cycles whose
        deadlines have passed entirely are skipped, so the loop resumes on the grid.
        """
        self.ticks += 1
        self.index += 1
        late = now_ns - self.deadline_ns
        skipped = 0
        if late >= self.period_ns:
            skipped = late // self.period_ns
            self.index += skipped
            self.skipped += skipped
        return skipped
