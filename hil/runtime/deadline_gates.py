"""Deadline gates: the plant's miss ratio over a sliding window and its consecutive misses.

The plant scores one deadline per period (was the control for the previous state applied
before this tick?) and hands each outcome to `DeadlineGates.record`. Two gates watch them:

| gate                        | value                                    | breached when      |
|-----------------------------|------------------------------------------|--------------------|
| `deadline_window_miss_ratio`| misses / deadlines in the last `window`  | > `max_miss_ratio` |
| `deadline_consecutive_misses`| the current run of consecutive misses   | > `max_consecutive`|

The ratio gate is judged only once the window is full, so the first few deadlines of a run
cannot breach it on their own. Each gate has a policy: `warn` logs a warning, at most one a
second per gate (`hil.runtime.ratelimit.RateLimiter`; the next line says how many it stands for);
`safe_stop` also makes `record` return the `Breach`, on which the plant applies its safe
output. A breach is counted once per crossing: the gate must come back within its limit
before it counts again. `reset()` forgets the window (the plant calls it on a clear).

Time comes from the injected clock (for the rate limit only). Not thread-safe: record from
the plant loop's thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from hil.runtime.ratelimit import RateLimiter

__all__ = ["CONSECUTIVE", "WINDOW_RATIO", "Breach", "DeadlineGateSettings", "DeadlineGates"]

Policy = Literal["warn", "safe_stop"]
POLICIES = ("warn", "safe_stop")
WINDOW_RATIO = "deadline_window_miss_ratio"
CONSECUTIVE = "deadline_consecutive_misses"


@dataclass(frozen=True, slots=True)
class DeadlineGateSettings:
    """`window`: deadlines in the sliding window; limits are breached when exceeded."""

    window: int
    max_miss_ratio: float
    miss_ratio_policy: Policy
    max_consecutive: int
    consecutive_policy: Policy

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError(f"window must be >= 1 deadline, got {self.window}")
        if not 0.0 <= self.max_miss_ratio <= 1.0:
            raise ValueError(f"max_miss_ratio must be in [0, 1], got {self.max_miss_ratio}")
        if self.max_consecutive < 1:
            raise ValueError(f"max_consecutive must be >= 1, got {self.max_consecutive}")
        for name in ("miss_ratio_policy", "consecutive_policy"):
            if getattr(self, name) not in POLICIES:
                raise ValueError(f"{name} must be one of {POLICIES}, got "
                                 f"{getattr(self, name)!r}")


@dataclass(frozen=True, slots=True)
class Breach:
    """A gate crossed its limit: `value` against `limit`, handled by `policy`."""

    gate: str
    value: float
    limit: float
    policy: Policy


class DeadlineGates:
    """The two deadline gates of the module docstring, fed one deadline at a time."""

    def __init__(
        self,
        settings: DeadlineGateSettings,
        log: Any = None,
        clock: Callable[[], int] = time.monotonic_ns,
        warn_interval_ns: int = 1_000_000_000,
    ) -> None:
        self.settings = settings
        self._log = log
        self._limiter = RateLimiter(warn_interval_ns, clock=clock, max_keys=4)
        self._ring = bytearray(settings.window)  # 1 = miss
        self._filled = 0
        self._next = 0
        self._window_misses = 0
        self._consecutive = 0
        self._total = 0
        self._max_window_ratio = 0.0
        self._max_consecutive = 0
        self._breaches = {WINDOW_RATIO: 0, CONSECUTIVE: 0}
        self._in_breach = {WINDOW_RATIO: False, CONSECUTIVE: False}
        self._breaching = False  # either gate in breach
        # The window's miss ratio is over the limit exactly when its misses are over this.
        self._max_window_misses = settings.max_miss_ratio * settings.window
        self._warnings = 0

    @property
    def window_miss_ratio(self) -> float:
        """Misses over the deadlines now in the window (0.0 before the first)."""
        return self._window_misses / self._filled if self._filled else 0.0

    def record(self, met: bool) -> Breach | None:
        """Score one deadline; a `safe_stop` breach is returned for the plant to act on."""
        self._total += 1
        miss = 0 if met else 1
        window = self.settings.window
        i = self._next
        was_full = self._filled == window
        if was_full:
            self._window_misses -= self._ring[i]
        else:
            self._filled += 1
        self._ring[i] = miss
        self._window_misses += miss
        self._next = i + 1 if i + 1 < window else 0
        if met:
            self._consecutive = 0
            # A met deadline in a full window raises no figure; with no gate in breach and the
            # window's misses within the limit, there is nothing to judge (the common tick).
            if not self._breaching and (self._filled < window or (
                    was_full and self._window_misses <= self._max_window_misses)):
                return None
        else:
            self._consecutive += 1
            self._max_consecutive = max(self._max_consecutive, self._consecutive)
        return self._judge_both()

    def _judge_both(self) -> Breach | None:
        window = self.settings.window
        ratio = self.window_miss_ratio
        if self._filled == window:
            self._max_window_ratio = max(self._max_window_ratio, ratio)
        ratio_out = self._filled == window and ratio > self.settings.max_miss_ratio
        consecutive_out = self._consecutive > self.settings.max_consecutive
        breach = self._judge(WINDOW_RATIO, ratio_out, ratio, self.settings.max_miss_ratio,
                             self.settings.miss_ratio_policy)
        breach2 = self._judge(CONSECUTIVE, consecutive_out, self._consecutive,
                              self.settings.max_consecutive, self.settings.consecutive_policy)
        self._breaching = any(self._in_breach.values())
        return breach or breach2

    def reset(self) -> None:
        """Empty the window and the consecutive count (totals and maxima are kept)."""
        self._ring[:] = bytes(self.settings.window)
        self._filled = self._next = self._window_misses = self._consecutive = 0
        self._in_breach = dict.fromkeys(self._in_breach, False)
        self._breaching = False

    def statistics(self) -> dict[str, Any]:
        return {
            "deadlines": self._total,
            "window": self.settings.window,
            "window_miss_ratio": self.window_miss_ratio,
            "max_window_miss_ratio": self._max_window_ratio,
            "max_consecutive_misses": self._max_consecutive,
            "breaches": dict(self._breaches),
            "warnings_logged": self._warnings,
            "settings": asdict(self.settings),
        }

    def _judge(self, gate: str, out: bool, value: float, limit: float,
               policy: Policy) -> Breach | None:
        if not out:
            self._in_breach[gate] = False
            return None
        if self._limiter.allow(gate) and self._log is not None:
            self._warnings += 1
            self._log.warning("deadline gate breached", gate=gate, value=value, limit=limit,
                              policy=policy, suppressed=self._limiter.take_suppressed(gate))
        if self._in_breach[gate]:
            return None
        self._in_breach[gate] = True
        self._breaches[gate] += 1
        return Breach(gate, float(value), float(limit), policy) if policy == "safe_stop" else None
