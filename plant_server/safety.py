"""Safety gates at the plant: state limits, input limits, non-finite values.

Names, units and limits come from the plant's description, never from a cart or links:
the "force" below is the plant's input in its own unit (`input_name`, `input_unit`: a force
in N for a cart, a voltage in V for the rotary; `max_force_n` is its limit in that unit and
`slew_limit_n_per_s` a rate in that unit per second; the names stay for compatibility).

The plant asks `SafetyGates` two things. Each period, `check_state(state)`: is the state
finite, a state named `x` (a cart's position, if the plant has one) within its track
(`|x| <= track_limit_m`) and every angle from upright (the description's `upright_angles`,
else the states named theta*) within `angle_limit_rad`? Each valid control,
`limit_force(force_n, t_ns)`: the input the actuator may get, saturated at `max_force_n` and
slew-limited to `slew_limit_n_per_s` from the last input applied (both counted, neither
trips). An input that fails `plausible` (non-finite, or beyond `sanity_force_n`) is not an
input anyone meant: the plant rejects the message.

A finite state beyond what the plant declares possible (its description's
`plausible_limits`, one magnitude per state, else `DEFAULT_PLAUSIBLE`: no lab rig's state in
SI units reaches it) is a sensor fault or a broken model, never a state to control.

A gate that trips returns a `SafetyEvent` {time, gate, value, limit}; the plant applies its
safe output and latches until cleared. Gates are judged only while the plant is under
control: a pendulum falling after a watchdog trip is not a new trip.

| gate                | value                      | limit              |
|---------------------|----------------------------|--------------------|
| `non_finite_state`  | the first bad entry's name | null               |
| `implausible_state` | the entry's value          | its plausible limit|
| `non_finite_control`| "nan", "inf" or "-inf"     | null               |
| `track`             | x (m), if a state is `x`   | `track_limit_m`    |
| `angle`             | angle from upright (rad)   | `angle_limit_rad`  |
| `deadline_*`        | see hil/runtime/deadline_gates.py  |                    |

`safe_force_n(state)` is the safe output: zero, or with `braking` a cart brake for a plant
with a state named `x_dot` (a viscous force opposing the cart's motion, saturated at
`max_force_n`); a plant without `x_dot` gets zero input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

__all__ = ["SafetyEvent", "SafetyGates", "SafetyLimits", "limits_from_config"]

Braking = Literal["none", "cart_brake"]
MAX_EVENTS = 100  # events kept in the report; all are counted
DEFAULT_PLAUSIBLE = 1e6  # |state entry| beyond this is implausible unless the plant says


@dataclass(frozen=True, slots=True)
class SafetyLimits:
    """None switches a limit off. Inputs in the plant's input unit (N for a force), rates in
    that unit per second, lengths in m, angles in rad."""

    max_force_n: float
    sanity_force_n: float
    track_limit_m: float | None = None
    angle_limit_rad: float | None = None
    slew_limit_n_per_s: float | None = None
    braking: Braking = "none"
    brake_n_per_mps: float = 50.0

    def __post_init__(self) -> None:
        if not self.max_force_n > 0:
            raise ValueError(f"max_force_n must be > 0, got {self.max_force_n}")
        if not self.sanity_force_n >= self.max_force_n:
            raise ValueError(f"sanity_force_n must be >= max_force_n ({self.max_force_n}), "
                             f"got {self.sanity_force_n}")
        for name in ("track_limit_m", "angle_limit_rad", "slew_limit_n_per_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0 or None, got {value}")
        if self.braking not in ("none", "cart_brake"):
            raise ValueError(f"braking must be 'none' or 'cart_brake', got {self.braking!r}")


@dataclass(frozen=True, slots=True)
class SafetyEvent:
    """One trip: `time` in s on the run clock, `t_ns` on the plant's monotonic clock."""

    time: float
    t_ns: int
    gate: str
    value: float | str | None
    limit: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def limits_from_config(safety: Any, mode: str, max_force_n: float) -> SafetyLimits:
    """`SafetyLimits` from the config's `safety` section (hil.config.SafetyConfig)."""
    return SafetyLimits(
        max_force_n=max_force_n,
        sanity_force_n=safety.sanity_force_factor * max_force_n,
        track_limit_m=safety.track_limit_m,
        angle_limit_rad=getattr(safety.angle_limit_rad, mode),
        slew_limit_n_per_s=safety.slew_limit_n_per_s,
        braking=safety.braking,
        brake_n_per_mps=safety.brake_n_per_mps,
    )


class SafetyGates:
    """The gates of the module docstring for a plant with `state_names`."""

    def __init__(self, limits: SafetyLimits, state_names: Sequence[str],
                 upright_angles: Sequence[str] | None = None, *, input_name: str = "force",
                 input_unit: str = "N",
                 plausible_limits: Sequence[float] | None = None) -> None:
        self.limits = limits
        self.state_names = tuple(state_names)
        # What the input is, for the report: the limits above are in `input_unit`.
        self.input_name = input_name or "force"
        self.input_unit = input_unit
        self._x = self.state_names.index("x") if "x" in self.state_names else None
        self._x_dot = self.state_names.index("x_dot") if "x_dot" in self.state_names else None
        # The angle gate: the plant's angles from upright (its description), else theta*.
        self._angles = tuple(i for i, n in enumerate(self.state_names)
                             if (n in upright_angles if upright_angles is not None
                                 else n.startswith("theta") and not n.endswith("_dot")))
        n = len(self.state_names)
        plausible = [DEFAULT_PLAUSIBLE] * n if plausible_limits is None else plausible_limits
        if len(plausible) != n or not all(float(v) > 0 for v in plausible):
            raise ValueError(f"plausible_limits must be {n} positive magnitudes, one per state "
                             f"{list(self.state_names)}, got {list(plausible)}")
        self._plausible = tuple((i, float(v)) for i, v in enumerate(plausible))
        self.events: list[SafetyEvent] = []
        self.trips = 0
        self.saturations = 0
        self.slew_limited = 0
        self._last_force_n = 0.0
        self._last_force_t_ns: int | None = None

    # ----------------------------------------------------------------- gates
    def check_state(self, state: Sequence[float], time_s: float, t_ns: int
                    ) -> SafetyEvent | None:
        """The first gate `state` trips (recorded), or None.

        `state` may be an array or, cheaper on the hot path, its `tolist()`.
        """
        breach = self.breach(state)
        return None if breach is None else self.trip(breach[0], time_s, t_ns, *breach[1:])

    def breach(self, state: Sequence[float]) -> tuple[str, float | str | None, float | None] | None:
        """(gate, value, limit) of the first gate `state` breaches, recording nothing."""
        for i, limit in self._plausible:
            v = state[i]
            if not -limit <= v <= limit:  # also false for NaN
                if not math.isfinite(v):
                    return "non_finite_state", self.state_names[i], None
                return "implausible_state", float(v), limit
        lim = self.limits
        if lim.track_limit_m is not None and self._x is not None:
            x = float(state[self._x])
            if abs(x) > lim.track_limit_m:
                return "track", x, lim.track_limit_m
        if lim.angle_limit_rad is not None:
            for i in self._angles:
                angle = float(state[i])
                if abs(angle) > lim.angle_limit_rad:
                    return "angle", angle, lim.angle_limit_rad
        return None

    def still_holds(self, state: Sequence[float]) -> str | None:
        """Why a clear would re-trip at once: the gate `state` breaches now, in words."""
        breach = self.breach(state)
        if breach is None:
            return None
        gate, value, limit = breach
        if limit is None:
            return f"{gate} still holds ({value})"
        return f"{gate} still holds ({value:.6g} beyond {limit:g})"

    def non_finite_control(self, value: str, time_s: float, t_ns: int) -> SafetyEvent:
        """The attached controller sent a non-finite force (`value`: "nan", "inf", "-inf")."""
        return self.trip("non_finite_control", time_s, t_ns, value, None)

    def trip(self, gate: str, time_s: float, t_ns: int, value: float | str | None,
             limit: float | None) -> SafetyEvent:
        """Record a trip of `gate` (also used for the deadline gates' safe stops)."""
        event = SafetyEvent(time_s, t_ns, gate, value, limit)
        self.trips += 1
        if len(self.events) < MAX_EVENTS:
            self.events.append(event)
        return event

    # ----------------------------------------------------------------- force
    def plausible(self, force_n: float) -> bool:
        """False for a force no controller means: non-finite, or beyond `sanity_force_n`."""
        return math.isfinite(force_n) and abs(force_n) <= self.limits.sanity_force_n

    def limit_force(self, force_n: float, t_ns: int) -> float:
        """The force to apply for a (plausible) control asking `force_n` at `t_ns`."""
        lim = self.limits
        if abs(force_n) > lim.max_force_n:
            force_n = math.copysign(lim.max_force_n, force_n)
            self.saturations += 1
        if lim.slew_limit_n_per_s is not None and self._last_force_t_ns is not None:
            dt_s = max(t_ns - self._last_force_t_ns, 0) * 1e-9
            step = lim.slew_limit_n_per_s * dt_s
            low, high = self._last_force_n - step, self._last_force_n + step
            if not low <= force_n <= high:
                force_n = min(max(force_n, low), high)
                self.slew_limited += 1
        return force_n

    def note_applied(self, force_n: float, t_ns: int) -> None:
        """The force the actuator now holds (controls and safe outputs alike), for the slew."""
        self._last_force_n = force_n
        self._last_force_t_ns = t_ns

    def safe_force_n(self, state: np.ndarray) -> float:
        lim = self.limits
        if lim.braking == "none" or self._x_dot is None:
            return 0.0
        v = float(state[self._x_dot])
        if not math.isfinite(v):
            return 0.0
        return float(np.clip(-lim.brake_n_per_mps * v, -lim.max_force_n, lim.max_force_n))

    # ----------------------------------------------------------------- report
    def report(self) -> dict[str, Any]:
        """plant.json's `safety` section: `trips` and `events` (names never change), and
        `input`: the plant's input by name and unit, its limit and slew limit in that unit
        (`limits` keeps its historical `_n` key names whatever the unit)."""
        lim = self.limits
        return {
            "input": {"name": self.input_name, "unit": self.input_unit,
                      "limit": lim.max_force_n, "sanity_limit": lim.sanity_force_n,
                      "slew_limit_per_s": lim.slew_limit_n_per_s},
            "trips": self.trips,
            "events": [e.to_dict() for e in self.events],
            "events_dropped": self.trips - len(self.events),
            "saturations": self.saturations,
            "slew_limited": self.slew_limited,
            "limits": asdict(self.limits),
        }
