"""Signals of an experiment: pure functions of run time, evaluated without allocating.

Each signal is a row of a table: its kind, the index of the entry it drives (a state of the
reference, an input of the disturbances) and six parameters (`PARAMS`), packed with the base
into one float64 array (`SignalTable.table`). `SignalTable.at(t)` writes every entry into one
vector allocated once: the table's base (the equilibrium for a
reference, zeros for disturbances) with each signal's entry replaced (`add` False) or added
to (`add` True). The kernel is numba-compiled: a call costs well under a microsecond.

| kind   | before `at_s` | from `at_s` on (tau = t - at_s)                                 |
|--------|---------------|-----------------------------------------------------------------|
| step   | initial       | value                                                           |
| ramp   | initial       | initial + slope * tau, held at `stop` once reached (NaN: never) |
| sine   | offset        | offset + amplitude * sin(2 pi f tau + phase)                     |
| square | offset        | offset + amplitude while sin(2 pi f tau + phase) >= 0, else -    |
| pulse  | 0             | value while tau < duration, then 0                              |
| chirp  | offset        | offset + amplitude * sin(2 pi (f0 tau + (f1 - f0) tau^2 / 2T)), |
|        |               | for tau < T (`duration_s`), then offset                         |
| csv    | first value   | its points (time from at_s, value), linear between them or held |
|        |               | (`hold`), the last value after them                             |

Seeded band-limited noise is not a kind of its own: the plan expands it into sines of random
frequencies and phases (hil/experiment/plan.py), so it too is a pure function of time.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

STEP, RAMP, SINE, SQUARE, PULSE, CHIRP, CURVE = range(7)
KINDS = {"step": STEP, "ramp": RAMP, "sine": SINE, "square": SQUARE, "pulse": PULSE,
         "chirp": CHIRP, "csv": CURVE}
# Parameter columns: at_s, then per kind (step: initial, value; ramp: initial, slope, stop;
# sine and square: offset, amplitude, frequency_hz, phase_rad; pulse: value, duration_s;
# chirp: offset, amplitude, f0_hz, f1_hz, duration_s; csv: the table row of its first point,
# its point count, 1 to hold each value or 0 to interpolate: its points are rows of the
# table after the signals', time then value).
PARAMS = 6


@njit(nogil=True, cache=True)
def signal_value(kind: int, p: np.ndarray, t: float) -> float:
    """The value of one signal (a row `p` of the table) at run time `t` (s)."""
    tau = t - p[0]
    if kind == PULSE:
        return float(p[1]) if 0.0 <= tau < p[2] else 0.0
    if tau < 0.0:
        return float(p[1])
    if kind == STEP:
        return float(p[2])
    if kind == RAMP:
        v = p[1] + p[2] * tau
        stop = p[3]
        if not math.isnan(stop) and (v - stop) * p[2] > 0.0:
            return float(stop)
        return float(v)
    if kind == CHIRP:
        if tau >= p[5]:
            return float(p[1])
        cycles = p[3] * tau + (p[4] - p[3]) * tau * tau / (2.0 * p[5])
        return float(p[1] + p[2] * math.sin(2.0 * math.pi * cycles))
    cycles = p[3] * tau + p[4] / (2.0 * math.pi)
    if kind == SINE:
        return float(p[1] + p[2] * math.sin(2.0 * math.pi * cycles))
    frac = cycles - math.floor(cycles)  # square: the sine's sign, without its rounding
    return float(p[1] + p[2]) if frac < 0.5 else float(p[1] - p[2])


@njit(nogil=True, cache=True)
def curve_value(table: np.ndarray, p: np.ndarray, t: float) -> float:
    """A csv signal's value at `t`: p = [at_s, first point's row, points, hold]; a point's
    row holds its time (from at_s) and value in the table's columns 2 and 3."""
    tau = t - p[0]
    first = int(p[1])
    last = first + int(p[2]) - 1
    if tau <= table[first, 2]:
        return float(table[first, 3])
    if tau >= table[last, 2]:
        return float(table[last, 3])
    lo, hi = first, last  # table[lo, 2] < tau < table[hi, 2]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if table[mid, 2] <= tau:
            lo = mid
        else:
            hi = mid
    if p[3] != 0.0:
        return float(table[lo, 3])
    share = (tau - table[lo, 2]) / (table[hi, 2] - table[lo, 2])
    return float(table[lo, 3] + share * (table[hi, 3] - table[lo, 3]))


@njit(nogil=True, cache=True)
def evaluate(t: float, table: np.ndarray, out: np.ndarray) -> None:
    """`out` at time `t` from a packed `table` (`SignalTable.table`: row 0 the base and, in
    its last cell, 1 to add the signals or 0 to replace; then a row per signal: kind, index,
    PARAMS parameters). One array argument, so a call from Python costs little."""
    n = out.shape[0]
    for i in range(n):
        out[i] = table[0, i]
    add = table[0, table.shape[1] - 1] != 0.0
    for r in range(1, table.shape[0]):
        row = table[r]
        kind = int(row[0])
        if kind < 0:
            break  # the curves' points follow the signals
        v = curve_value(table, row[2:], t) if kind == CURVE else signal_value(kind, row[2:], t)
        j = int(row[1])
        if add:
            out[j] += v
        else:
            out[j] = v


@njit(nogil=True, cache=True)
def evaluate_series(times: np.ndarray, table: np.ndarray, n: int) -> np.ndarray:
    """One row of `evaluate` per time (for reports, not for the loop)."""
    out = np.empty((times.shape[0], n))
    for k in range(times.shape[0]):
        evaluate(times[k], table, out[k])
    return out


class SignalTable:
    """Signals driving the entries of one vector (see the module docstring). `at(t)` returns
    the same array every call, overwritten: copy it to keep it."""

    def __init__(self, names: tuple[str, ...], base: np.ndarray, add: bool,
                 rows: list[tuple[int, int, list[float]]],
                 curves: dict[int, np.ndarray] | None = None) -> None:
        """`rows`: (kind, index, parameters) per signal; `curves`: for a csv signal, by its
        position in `rows`, its points (k x 2: time from at_s, value; parameters [at_s,
        hold])."""
        self.names = names  # the entries' names (states or inputs)
        self.base = np.array(base, dtype=np.float64)
        self.add = add
        n = len(self.base)
        curves = curves or {}
        points = sum(len(c) for c in curves.values())
        self.table = np.full((1 + len(rows) + points + bool(points),
                              max(n, 2 + PARAMS) + 1), np.nan)
        self.table[0, :n] = self.base
        self.table[0, -1] = 1.0 if add else 0.0
        at = 1 + len(rows) + bool(points)  # a row of kind -1 ends the signals
        for i, (kind, index, p) in enumerate(rows, start=1):
            if i - 1 in curves:
                curve = curves[i - 1]
                p = [p[0], at, len(curve), p[1]]
                self.table[at:at + len(curve), 2:4] = curve
                at += len(curve)
            self.table[i, :2 + len(p)] = [kind, index, *p]
        if points:
            self.table[1 + len(rows), 0] = -1.0
        self._out = self.base.copy()
        self.at(0.0)  # compiled (or loaded from numba's cache) before the loop runs


    def at(self, t_s: float) -> np.ndarray:
        evaluate(t_s, self.table, self._out)
        return self._out

    def series(self, times_s: np.ndarray) -> np.ndarray:
        """The vector at each of `times_s`: one row per time."""
        return evaluate_series(np.ascontiguousarray(times_s, dtype=np.float64), self.table,
                               len(self.base))
