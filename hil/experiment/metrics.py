"""Control metrics of a recorded response (NumPy only: python-control is the tests' reference).

`step_info` computes the step metrics as python-control's `control.step_info` defines them for
response data starting from 0 at the step (control/timeresp.py): the final value is the last
sample; rise time from 10 % to 90 % of it; settling time the first time after which the
response stays within 2 % of it; overshoot the peak beyond it in percent of it; peak the
largest |y| and its time. `step_metrics` applies it to a recorded state around a step at
`at_s`: the response is the state minus its value at the step (its last sample at or before
`at_s`), over the samples from the step on (to the window's end: the first disturbance after
the step, or the run's end), in time since the step. `tracking_errors` and
`effort` integrate by the trapezoidal rule over the recorded samples. `swingup_time` is when
an angle entered a window about its target and then held it (to the end, or for a time).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

SETTLING_THRESHOLD = 0.02
RISE_LIMITS = (0.1, 0.9)


def _integral(y: np.ndarray, t: np.ndarray) -> float:
    return float(np.trapezoid(y, t)) if len(t) > 1 else 0.0


def step_info(t: np.ndarray, y: np.ndarray) -> dict[str, float] | None:
    """python-control's step_info of the response `y` at times `t` (from 0), its final value
    its last sample; None when that final value is 0 or not finite (no step to measure)."""
    final = float(y[-1])
    if final == 0.0 or not math.isfinite(final):
        return None
    sign = math.copysign(1.0, final)
    low = int(np.nonzero(sign * (y - RISE_LIMITS[0] * final) >= 0)[0][0])
    high = int(np.nonzero(sign * (y - RISE_LIMITS[1] * final) >= 0)[0][0])
    outside = np.nonzero(np.abs(y / final - 1) >= SETTLING_THRESHOLD)[0]
    settled = 0 if outside.size == 0 else int(outside[-1]) + 1
    excess = abs(float(np.max(sign * y))) - abs(final)
    peak = int(np.argmax(np.abs(y)))
    return {"rise_time_s": float(t[high] - t[low]),
            "settling_time_s": float(t[settled]) if settled < len(t) else math.nan,
            "overshoot_pct": abs(100.0 * excess / final) if excess > 0 else 0.0,
            "peak": float(abs(y[peak])), "peak_time_s": float(t[peak])}


def step_metrics(t: np.ndarray, y: np.ndarray, at_s: float, value: float,
                 until_s: float = math.inf) -> dict[str, Any]:
    """The step metrics of state `y` (times `t`, run time) for a step to `value` at `at_s`,
    over the samples before `until_s` (module docstring), with `initial` (the state at the
    step), `final` (its last sample) and `steady_state_error` (value - final); the step_info
    figures are None when the state did not move or there are no samples after the step."""
    keep = t < until_s
    t, y = t[keep], y[keep]
    after = np.nonzero(t >= at_s)[0]
    if after.size < 2:
        return {"at_s": at_s, "value": value, "initial": None, "final": None,
                "steady_state_error": None, **dict.fromkeys(
                    ("rise_time_s", "settling_time_s", "overshoot_pct", "peak", "peak_time_s"))}
    first = int(after[0])
    base = first if t[first] == at_s or first == 0 else first - 1
    y0 = float(y[base])
    tau, response = t[first:] - at_s, y[first:] - y0
    info = step_info(tau, response) or dict.fromkeys(
        ("rise_time_s", "settling_time_s", "overshoot_pct", "peak", "peak_time_s"))
    final = float(y[-1])
    return {"at_s": at_s, "value": value, "initial": y0, "final": final,
            "steady_state_error": value - final, **info}


def tracking_errors(t: np.ndarray, error: np.ndarray, at_s: float) -> dict[str, float]:
    """IAE, ISE and ITAE of `error` from `at_s` on, ITAE weighting by the time since `at_s`."""
    keep = t >= at_s
    tau, e = t[keep] - at_s, error[keep]
    return {"iae": _integral(np.abs(e), tau), "ise": _integral(e * e, tau),
            "itae": _integral(tau * np.abs(e), tau)}


def effort(t: np.ndarray, u: np.ndarray) -> dict[str, float]:
    """The integral of u^2 over the run and the peak |u|, of one input."""
    return {"effort": _integral(u * u, t),
            "peak_abs": float(np.abs(u).max()) if len(u) else 0.0}


def swingup_time(t: np.ndarray, error: np.ndarray, window_rad: float,
                 hold_s: float | None = None) -> dict[str, Any]:
    """The swing-up time of an angle whose distance from its target (wrapped) is `error` at
    times `t`: the time of the first sample of the first entry into |error| <= `window_rad`
    that stays inside to the last sample (`hold_s` None) or over at least `hold_s` from the
    entry (an entry too near the end to have held that long does not count). `time_s` None
    and `caught` False when no entry held; `entries` counts the entries into the window."""
    inside = np.abs(error) <= window_rad
    starts = np.nonzero(inside & ~np.concatenate(([False], inside[:-1])))[0]
    leaves = np.nonzero(~inside)[0]
    caught = None
    for k in starts:
        after = leaves[leaves > k]
        if hold_s is None:
            held = after.size == 0
        else:
            until = t[-1] if after.size == 0 else t[after[0]]
            held = until - t[k] >= hold_s
        if held:
            caught = int(k)
            break
    return {"time_s": None if caught is None else float(t[caught]),
            "caught": caught is not None, "entries": int(starts.size)}
