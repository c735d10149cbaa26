"""What every plant model tells the runtime beyond its dynamics: the states it regulates, the
states that wrap, and the trim input that holds its equilibrium.

`regulated_states` are the states a run's verdict checks reach their target; the plant may
name them, and by default they are its positions and angles (the states whose unit is a
length or an angle), or, with none of those, every state that is not a rate. The pendulum
plants keep the angles from upright they always had. `wrapping_states` are angles compared
modulo a full turn (2 pi); none by default.

`find_trim` solves f(x_eq, u) = 0 for the input u within the input limits (SciPy's bounded
least squares), for a plant that gives no trim of its own. It says whether a trim exists:
the residual must be tiny against what the inputs can do to the derivatives.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hil.dynamics.inputs import Inputs

# Units of positions and angles: the states regulated by default.
POSITION_UNITS = frozenset({"m", "mm", "cm", "km", "rad", "deg", "degree", "degrees", "rev"})
TRIM_TOLERANCE = 1e-8  # a trim's residual, relative to the inputs' effect on the derivatives


def is_rate(unit: str) -> bool:
    """A unit per second (m/s, rad/s, 1/s), per second squared, or in rpm or Hz."""
    u = unit.strip().lower()
    return "/s" in u or u in {"rpm", "hz"}


def default_regulated(names: Sequence[str], units: Sequence[str]) -> tuple[str, ...]:
    """Positions and angles by unit; with none, every state that is not a rate."""
    positions = tuple(n for n, u in zip(names, units, strict=True)
                      if u.strip().lower() in POSITION_UNITS)
    if positions:
        return positions
    return tuple(n for n, u in zip(names, units, strict=True) if not is_rate(u))


def named_states(declared: Any, names: Sequence[str], attr: str, where: str) -> tuple[str, ...]:
    """`declared` (a plant's `attr`) as a tuple of its state names, or ValueError naming
    the names that are not states and the states there are."""
    if isinstance(declared, str) or not isinstance(declared, (tuple, list)) \
            or not all(isinstance(n, str) for n in declared):
        raise ValueError(f"{where}: {attr} must be a tuple of state names, got {declared!r}")
    unknown = [n for n in declared if n not in names]
    if unknown:
        raise ValueError(f"{where}: {attr} names {unknown}, which are not states; the states "
                         f"are {list(names)}")
    return tuple(declared)


class PlantStepError(RuntimeError):
    """A plant's step could not go on (an FMU's failing call, a lab model leaving its
    validity): raised from `step`, it puts the plant in its safe output and ends the run with
    this message as the reason, told to the controller. Any other exception from `step` is a
    bug: the plant still goes safe, and its report carries the traceback."""


@dataclass(frozen=True)
class Trim:
    """The input that holds `x_eq` (or the best within the limits) and how well it does."""

    u: np.ndarray
    residual: float  # max |f(x_eq, u)|
    scale: float  # what the inputs can do to the derivatives (max |df/du| * input range)
    found: bool
    error: str | None = None  # the derivatives failed while the trim was sought
    declared: bool = False  # the plant's own equilibrium_input, not one found

    def reason(self, names: Sequence[str]) -> str:
        """Why no trim exists, for a refusal."""
        if self.error is not None:
            return (f"no trim input could be sought: {self.error}; declare "
                    f"equilibrium_input, or an equilibrium where derivatives is finite")
        if self.declared:
            return (f"the declared equilibrium_input "
                    f"{dict(zip(names, self.u.tolist(), strict=True))} leaves "
                    f"|d state/dt| = {self.residual:.3g} at the equilibrium (it must be ~0); "
                    f"fix equilibrium_input or equilibrium, or leave equilibrium_input out to "
                    f"have it found")
        return (f"no input within the limits holds the equilibrium: the best, "
                f"{dict(zip(names, np.round(self.u, 6).tolist(), strict=True))}, leaves "
                f"|d state/dt| = {self.residual:.3g} (it must be ~0); declare "
                f"equilibrium_input if the plant has one, or an equilibrium it can hold")


def trim_at(derivatives: Callable[[np.ndarray, np.ndarray], Any], x_eq: np.ndarray,
            inputs: Inputs, u: np.ndarray) -> Trim:
    """How well the input `u` (a declared trim) holds `x_eq`."""
    scale = _authority(derivatives, x_eq, inputs)
    left = float(np.abs(np.asarray(derivatives(x_eq, u), dtype=np.float64)).max())
    return Trim(u, left, scale, left <= TRIM_TOLERANCE * max(scale, 1.0), declared=True)


def _authority(derivatives: Callable[[np.ndarray, np.ndarray], Any], x_eq: np.ndarray,
               inputs: Inputs) -> float:
    """The largest change of a derivative that one input's full range makes at `x_eq`."""
    low, high = np.array(inputs.low), np.array(inputs.high)
    middle = 0.5 * (low + high)
    base = np.asarray(derivatives(x_eq, middle), dtype=np.float64)
    return max(float(np.abs(np.asarray(derivatives(x_eq, middle + 0.5 * (high - low) * e),
                                       dtype=np.float64) - base).max())
               for e in np.eye(inputs.n))


def find_trim(derivatives: Callable[[np.ndarray, np.ndarray], Any], x_eq: np.ndarray,
              inputs: Inputs) -> Trim:
    """The u within the limits with derivatives(x_eq, u) ~ 0 (`derivatives` takes u as an
    array of `inputs.n`), by bounded least squares from the middle of the limits."""
    from scipy.optimize import least_squares  # type: ignore[import-untyped]

    low, high = np.array(inputs.low), np.array(inputs.high)

    def residual(u: np.ndarray) -> np.ndarray:
        return np.asarray(derivatives(x_eq, np.ascontiguousarray(u)), dtype=np.float64)

    start = np.clip(np.zeros(inputs.n), low, high)
    scale = _authority(derivatives, x_eq, inputs)
    solution = least_squares(residual, start, bounds=(low, high), xtol=1e-15, ftol=1e-15,
                             gtol=1e-15, method="trf")
    u = np.clip(solution.x, low, high)
    left = float(np.abs(residual(u)).max())
    return Trim(u, left, scale, left <= TRIM_TOLERANCE * max(scale, 1.0))
