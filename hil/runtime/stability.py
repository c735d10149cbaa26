"""Stability monitors: updated by the controller loop every step, read by any other thread.

Four monitors, each with its own lock (an update or a read runs entirely under it, so a
reader sees a state between two whole updates, never inside one) and fixed-size memory (a
ring of the last `window` steps plus a few running totals; nothing grows with the run):

- `LyapunovMonitor`: V = sigma^2 / 2 of the law's sliding variable; the fraction of steps in
  which V decreased, over the run and over the last window. Steps that start with
  |sigma| <= `sigma_floor` (on the surface, where V only jitters) are not evaluated.
- `ActuatorMonitor`: saturation duty (share of steps with an input at a bound of its limits)
  and slew-limit hits (steps where an input changed by more than `slew_limit_n` from the
  previous one).
- `ConditionMonitor`: condition number of the mass matrix M(q) at each step's state.
- `SurfaceMonitor`: the sliding-surface magnitude |sigma|.

`StabilityMonitor` holds one of each; `summary()` is the `stability` section of
controller.json (and so of the report, where `gates.stability_min` / `stability_max` turn
entries into gates).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = [
    "ActuatorMonitor",
    "ConditionMonitor",
    "LyapunovMonitor",
    "StabilityMonitor",
    "SurfaceMonitor",
]


class _Ring:
    """The last `size` values pushed (not thread-safe on its own: callers hold their lock)."""

    __slots__ = ("count", "size", "values")

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"window must be >= 1, got {size}")
        self.size = size
        self.values = np.zeros(size)
        self.count = 0

    def push(self, v: float) -> None:
        self.values[self.count % self.size] = v
        self.count += 1

    def view(self) -> np.ndarray:
        return self.values[: min(self.count, self.size)]


@dataclass(frozen=True)
class LyapunovStatistics:
    steps: int
    evaluated_steps: int  # steps that started off the surface (|sigma| > sigma_floor)
    decreased_steps: int
    decrease_ratio: float  # decreased / evaluated over the run (1.0 if none evaluated)
    window_decrease_ratio: float  # the same over the evaluated steps of the last window
    v_last: float


class LyapunovMonitor:
    def __init__(self, window: int = 1000, sigma_floor: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._ring = _Ring(window)
        self._v_floor = 0.5 * sigma_floor * sigma_floor
        self._v_prev = math.nan
        self._steps = 0
        self._evaluated = 0
        self._decreased = 0

    def update(self, sigma: float) -> None:
        v = 0.5 * sigma * sigma
        with self._lock:
            self._steps += 1
            if self._v_prev > self._v_floor:  # False for the first step (NaN)
                self._evaluated += 1
                down = v < self._v_prev
                self._decreased += down
                self._ring.push(1.0 if down else 0.0)
            else:
                self._ring.push(-1.0)  # not evaluated
            self._v_prev = v

    def statistics(self) -> LyapunovStatistics:
        with self._lock:
            window = self._ring.view()
            evaluated = int(np.count_nonzero(window >= 0.0))
            return LyapunovStatistics(
                self._steps, self._evaluated, self._decreased,
                self._decreased / self._evaluated if self._evaluated else 1.0,
                float(np.count_nonzero(window > 0.0)) / evaluated if evaluated else 1.0,
                0.0 if math.isnan(self._v_prev) else self._v_prev)


@dataclass(frozen=True)
class ActuatorStatistics:
    steps: int
    saturated_steps: int
    saturation_duty: float  # saturated / steps over the run
    window_saturation_duty: float
    slew_hits: int
    window_slew_hits: int
    max_step_change_n: float


class ActuatorMonitor:
    """Saturation and slew of the inputs: a step is saturated when any input sits at a bound
    of its [low, high] (a single number L means -L..L); its change is the largest |du| over the
    inputs, each in its own unit, against `slew_limit` (per step)."""

    def __init__(self, limits: float | Sequence[tuple[float, float]], slew_limit_n: float,
                 window: int = 1000) -> None:
        bounds = [(-float(limits), float(limits))] if isinstance(limits, (int, float)) \
            else [(float(lo), float(hi)) for lo, hi in limits]
        if not (bounds and all(hi > lo for lo, hi in bounds) and slew_limit_n > 0):
            raise ValueError("each input's limits need low < high and slew_limit_n must be > 0, "
                             f"got {limits!r}, {slew_limit_n!r}")
        self._lock = threading.Lock()
        margin = 1e-9
        self._bounds = [(lo + margin * abs(lo), hi - margin * abs(hi)) for lo, hi in bounds]
        self._slew = slew_limit_n
        self._sat = _Ring(window)
        self._slews = _Ring(window)
        self._prev: Sequence[float] = [math.nan] * len(bounds)
        self._steps = 0
        self._saturated = 0
        self._slew_hits = 0
        self._max_change = 0.0

    def update(self, u: float | Sequence[float]) -> None:
        if isinstance(u, (int, float)):
            u = (u,)
        if len(u) == 1 == len(self._bounds):  # one input: no loop (the controller's hot path)
            v = u[0]
            lo, hi = self._bounds[0]
            saturated = not lo < v < hi
            change = abs(v - self._prev[0])  # NaN on the first step: no slew
            change = change if change > 0.0 else 0.0
        else:
            saturated, change = self._scan(u)
        with self._lock:
            self._steps += 1
            self._saturated += saturated
            self._sat.push(1.0 if saturated else 0.0)
            hit = change > self._slew
            self._slew_hits += hit
            self._slews.push(1.0 if hit else 0.0)
            if change > self._max_change:
                self._max_change = change
            self._prev = u

    def _scan(self, u: Sequence[float]) -> tuple[bool, float]:
        """(any input at a bound, the largest |du| over the inputs)."""
        saturated = False
        change = 0.0
        for v, (lo, hi), prev in zip(u, self._bounds, self._prev, strict=True):
            saturated |= not lo < v < hi
            d = abs(v - prev)  # NaN on the first step: no slew
            if d > change:
                change = d
        return saturated, change

    def statistics(self) -> ActuatorStatistics:
        with self._lock:
            sat, slews = self._sat.view(), self._slews.view()
            return ActuatorStatistics(
                self._steps, self._saturated,
                self._saturated / self._steps if self._steps else 0.0,
                float(sat.mean()) if sat.size else 0.0,
                self._slew_hits, int(slews.sum()), self._max_change)


@dataclass(frozen=True)
class ConditionStatistics:
    steps: int
    last: float | None
    max: float | None  # over the run
    mean: float | None  # over the run
    window_max: float | None


class ConditionMonitor:
    def __init__(self, window: int = 1000) -> None:
        self._lock = threading.Lock()
        self._ring = _Ring(window)
        self._steps = 0
        self._sum = 0.0
        self._max = -math.inf

    def update(self, condition: float) -> None:
        with self._lock:
            self._steps += 1
            self._sum += condition
            if condition > self._max:
                self._max = condition
            self._ring.push(condition)

    def statistics(self) -> ConditionStatistics:
        with self._lock:
            if not self._steps:
                return ConditionStatistics(0, None, None, None, None)
            window = self._ring.view()
            last = float(self._ring.values[(self._ring.count - 1) % self._ring.size])
            return ConditionStatistics(self._steps, last, self._max, self._sum / self._steps,
                                       float(window.max()))


@dataclass(frozen=True)
class SurfaceStatistics:
    steps: int
    abs_last: float | None
    abs_max: float | None  # over the run
    window_abs_max: float | None
    window_rms: float | None


class SurfaceMonitor:
    def __init__(self, window: int = 1000) -> None:
        self._lock = threading.Lock()
        self._ring = _Ring(window)
        self._max = 0.0

    def update(self, sigma: float) -> None:
        a = abs(sigma)
        with self._lock:
            if a > self._max:
                self._max = a
            self._ring.push(a)

    def statistics(self) -> SurfaceStatistics:
        with self._lock:
            n = self._ring.count
            if not n:
                return SurfaceStatistics(0, None, None, None, None)
            window = self._ring.view()
            return SurfaceStatistics(
                n, float(self._ring.values[(n - 1) % self._ring.size]), self._max,
                float(window.max()), float(np.sqrt(np.mean(window * window))))


def _finite(d: dict[str, Any]) -> dict[str, Any]:
    """JSON-safe: non-finite floats (a diverged run) become None."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in d.items()}


class StabilityMonitor:
    """All four monitors, fed together once per control step."""

    def __init__(self, limits: float | Sequence[tuple[float, float]], slew_limit_n: float,
                 window: int = 1000, sigma_floor: float = 0.0) -> None:
        self.window = window
        self.lyapunov = LyapunovMonitor(window, sigma_floor)
        self.actuator = ActuatorMonitor(limits, slew_limit_n, window)
        self.condition = ConditionMonitor(window)
        self.surface = SurfaceMonitor(window)

    def update(self, sigma: float, u: float | Sequence[float], mass_condition: float) -> None:
        self.lyapunov.update(sigma)
        self.actuator.update(u)
        self.condition.update(mass_condition)
        self.surface.update(sigma)

    def summary(self) -> dict[str, Any]:
        """The `stability` report section (plain types, JSON-safe)."""
        return {
            "window": self.window,
            "lyapunov": _finite(asdict(self.lyapunov.statistics())),
            "actuator": _finite(asdict(self.actuator.statistics())),
            "mass_matrix_condition": _finite(asdict(self.condition.statistics())),
            "surface": _finite(asdict(self.surface.statistics())),
        }
