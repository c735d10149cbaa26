"""Safety gates at the plant: state limits, input limits, non-finite values.

Names, units and limits come from the plant's description, never from a cart or links: the
plant's inputs (`hil.dynamics.inputs.Inputs`: one name, unit and [low, high] per input) and
its states.

The plant asks `SafetyGates` two things. Each period, `check_state(state)`: is the state
finite, a state named `x` (a cart's position, if the plant has one) within its track
(`|x| <= track_limit_m`) and every angle (the description's regulated states in rad, else
the states named theta*) within `angle_limit_rad` of its target (the description's
`equilibrium`; modulo a full turn for a state in `wraps`)? Each valid control,
`limit_input(u, t_ns)`: the inputs the actuators may get, each held within its [low, high]
and slew-limited to `slew_limit_per_s` (in that input's unit per second) from the last input
applied (both counted, neither trips). A control that fails `plausible` (an entry beyond
`sanity_factor` times its input's largest magnitude) is not an input anyone meant: the plant
rejects the message.

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
| `angle`             | the angle from its target (rad) | `angle_limit_rad` |
| `deadline_*`        | see hil/runtime/deadline_gates.py  |                    |

`safe_input(state)` is the safe output: each input at zero (or at the bound of its range
nearest zero, for an input whose range excludes zero: motors off); with `braking`, a
single-input plant with a state named `x_dot` gets a cart brake instead (a viscous force
opposing the cart's motion, held within the input's limits).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from hil.dynamics.inputs import Inputs

__all__ = ["SafetyEvent", "SafetyGates", "SafetyLimits", "limits_from_config"]

Braking = Literal["none", "cart_brake"]
MAX_EVENTS = 100  # events kept in the report; all are counted
DEFAULT_PLAUSIBLE = 1e6  # |state entry| beyond this is implausible unless the plant says


@dataclass(frozen=True, slots=True)
class SafetyLimits:
    """None switches a limit off. Inputs in each input's unit, their rates in that unit per
    second, lengths in m, angles in rad."""

    inputs: Inputs
    sanity_factor: float = 10.0
    track_limit_m: float | None = None
    angle_limit_rad: float | None = None
    slew_limit_per_s: float | None = None
    braking: Braking = "none"
    brake_n_per_mps: float = 50.0

    def __post_init__(self) -> None:
        if not self.sanity_factor >= 1:
            raise ValueError(f"sanity_factor must be >= 1, got {self.sanity_factor}")
        for name in ("track_limit_m", "angle_limit_rad", "slew_limit_per_s"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be > 0 or None, got {value}")
        if self.braking not in ("none", "cart_brake"):
            raise ValueError(f"braking must be 'none' or 'cart_brake', got {self.braking!r}")

    @property
    def sanity(self) -> tuple[float, ...]:
        """Per input, the |u| beyond which a control is implausible."""
        return tuple(self.sanity_factor * m for m in self.inputs.magnitude)


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


def limits_from_config(safety: Any, mode: str, inputs: Inputs) -> SafetyLimits:
    """`SafetyLimits` from the config's `safety` section (hil.config.SafetyConfig)."""
    return SafetyLimits(
        inputs=inputs,
        sanity_factor=safety.sanity_force_factor,
        track_limit_m=safety.track_limit_m,
        angle_limit_rad=getattr(safety.angle_limit_rad, mode),
        slew_limit_per_s=safety.slew_limit_n_per_s,
        braking=safety.braking,
        brake_n_per_mps=safety.brake_n_per_mps,
    )


class SafetyGates:
    """The gates of the module docstring for a plant with `state_names`."""

    def __init__(self, limits: SafetyLimits, state_names: Sequence[str],
                 angles: Sequence[str] | None = None, *,
                 targets: Sequence[float] | None = None, wraps: Sequence[str] = (),
                 plausible_limits: Sequence[float] | None = None) -> None:
        self.limits = limits
        self.state_names = tuple(state_names)
        inputs = limits.inputs
        self._bounds = tuple(zip(inputs.low, inputs.high, strict=True))
        self._sanity = limits.sanity
        self.n_inputs = inputs.n
        self._one = inputs.n == 1
        # Safe: each input off (zero, or the bound nearest zero).
        self._off = [min(max(0.0, lo), hi) for lo, hi in self._bounds]
        self._x = self.state_names.index("x") if "x" in self.state_names else None
        self._x_dot = self.state_names.index("x_dot") if "x_dot" in self.state_names else None
        n = len(self.state_names)
        # The angle gate: each angle (the plant's regulated angles, else theta*) from its
        # target, modulo a full turn where the plant says the angle wraps.
        target = [0.0] * n if targets is None else [float(v) for v in targets]
        self._angles = tuple((i, target[i], name in wraps)
                             for i, name in enumerate(self.state_names)
                             if (name in angles if angles is not None
                                 else name.startswith("theta") and not name.endswith("_dot")))
        plausible = [DEFAULT_PLAUSIBLE] * n if plausible_limits is None else plausible_limits
        if len(plausible) != n or not all(float(v) > 0 for v in plausible):
            raise ValueError(f"plausible_limits must be {n} positive magnitudes, one per state "
                             f"{list(self.state_names)}, got {list(plausible)}")
        self._plausible = tuple((i, float(v)) for i, v in enumerate(plausible))
        self.events: list[SafetyEvent] = []
        self.trips = 0
        self.saturations = 0
        self.slew_limited = 0
        self._last_u = list(self._off)
        self._last_t_ns: int | None = None

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
            for i, target, wraps in self._angles:
                off = float(state[i]) - target
                if wraps:
                    off = (off + math.pi) % (2 * math.pi) - math.pi
                if abs(off) > lim.angle_limit_rad:
                    return "angle", off, lim.angle_limit_rad
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
        """The attached controller sent a non-finite input (`value`: "nan", "inf", "-inf")."""
        return self.trip("non_finite_control", time_s, t_ns, value, None)

    def trip(self, gate: str, time_s: float, t_ns: int, value: float | str | None,
             limit: float | None) -> SafetyEvent:
        """Record a trip of `gate` (also used for the deadline gates' safe stops)."""
        event = SafetyEvent(time_s, t_ns, gate, value, limit)
        self.trips += 1
        if len(self.events) < MAX_EVENTS:
            self.events.append(event)
        return event

    # ----------------------------------------------------------------- inputs
    def plausible(self, u: Sequence[float]) -> bool:
        """False for a control no controller means: an entry non-finite, or beyond its
        input's sanity limit (the count is checked by the caller)."""
        for v, limit in zip(u, self._sanity, strict=True):  # noqa: SIM110 (no generator per tick)
            if not -limit <= v <= limit:  # also false for NaN
                return False
        return True

    def judge(self, u: list[float]) -> tuple[str, str] | None:
        """Why a control's input vector is refused (rejection kind, detail), or None: the
        wrong count (`bad_shape`), or an entry no controller means (`implausible_input`)."""
        if self._one and len(u) == 1 and -self._sanity[0] <= u[0] <= self._sanity[0]:
            return None  # the common case, without a loop
        if len(u) != self.n_inputs:
            return ("bad_shape", f"control.u has {len(u)} entries; the plant has "
                                 f"{self.n_inputs} inputs {list(self.limits.inputs.names)}")
        if not self.plausible(u):
            return ("implausible_input", f"control.u {[float(f'{v:.6g}') for v in u]} beyond "
                                         f"{self.limits.sanity_factor:g} x the input limits")
        return None

    def limit_input(self, u: Sequence[float], t_ns: int) -> list[float]:
        """The inputs to apply for a (plausible) control asking `u` at `t_ns`."""
        if self._one and self.limits.slew_limit_per_s is None:  # the common case: no loop
            v = u[0]
            lo, hi = self._bounds[0]
            if lo <= v <= hi:
                return [v]
            self.saturations += 1
            return [lo if v < lo else hi]
        out = list(u)
        saturated = slewed = False
        slew = self.limits.slew_limit_per_s
        step = None if slew is None or self._last_t_ns is None \
            else slew * max(t_ns - self._last_t_ns, 0) * 1e-9
        for i, (lo, hi) in enumerate(self._bounds):
            v = out[i]
            if not lo <= v <= hi:
                v = lo if v < lo else hi
                saturated = True
            if step is not None:
                last = self._last_u[i]
                if not last - step <= v <= last + step:
                    v = min(max(v, last - step), last + step)
                    slewed = True
            out[i] = v
        self.saturations += saturated
        self.slew_limited += slewed
        return out

    def note_applied(self, u: list[float], t_ns: int) -> None:
        """The inputs the actuators now hold (controls and safe outputs alike), for the slew."""
        self._last_u = u
        self._last_t_ns = t_ns

    def safe_input(self, state: np.ndarray) -> list[float]:
        """The safe output (module docstring): a new list, one entry per input."""
        lim = self.limits
        if lim.braking == "none" or self._x_dot is None or self.n_inputs != 1:
            return list(self._off)
        v = float(state[self._x_dot])
        if not math.isfinite(v):
            return list(self._off)
        lo, hi = self._bounds[0]
        return [min(max(-lim.brake_n_per_mps * v, lo), hi)]

    # ----------------------------------------------------------------- report
    def report(self) -> dict[str, Any]:
        """plant.json's `safety` section: `trips` and `events` (names never change), and
        `inputs`: per input its name, unit, limits and sanity limit in that unit."""
        lim = self.limits
        inputs = lim.inputs
        return {
            "inputs": [{"name": name, "unit": unit, "low": lo, "high": hi, "sanity_limit": s}
                       for name, unit, lo, hi, s in zip(inputs.names, inputs.units, inputs.low,
                                                        inputs.high, self._sanity, strict=True)],
            "slew_limit_per_s": lim.slew_limit_per_s,
            "trips": self.trips,
            "events": [e.to_dict() for e in self.events],
            "events_dropped": self.trips - len(self.events),
            "saturations": self.saturations,
            "slew_limited": self.slew_limited,
            "limits": {k: v for k, v in asdict(self.limits).items() if k != "inputs"},
        }
