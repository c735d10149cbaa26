"""Gain-vector validation shared by the control laws: the one check every gain goes through,
at load (controller.gains, a law's defaults) and at run time (`hil gains`, `set_gains`).

Every gain must be a finite number of a sane magnitude (|g| <= MAX_GAIN and g == 0 or
|g| >= MIN_GAIN: 1e300 or 1e-320 are typing accidents, and a plant driven by them trips its
gates). A law may declare its own range per gain, `gain_bounds = {name: (low, high)}`
(inclusive); the built-in laws take positive gains only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

MAX_GAIN = 1e9
MIN_GAIN = 1e-12


class GainError(ValueError):
    """A gain vector was rejected; the message names the controller and the gain."""


def declared_bounds(controller: str, names: Sequence[str], bounds: Any
                    ) -> dict[str, tuple[float, float]]:
    """A law's `gain_bounds` as {name: (low, high)}; GainError naming what is wrong with it."""
    if bounds is None:
        return {}
    if not isinstance(bounds, Mapping):
        raise GainError(f"{controller}.gain_bounds must map gain names to (low, high), "
                        f"got {bounds!r}")
    out = {}
    for name, pair in bounds.items():
        if name not in names:
            raise GainError(f"{controller}.gain_bounds names {name!r}, which is not one of its "
                            f"gains [{', '.join(names)}]")
        try:
            low, high = (float(v) for v in pair)
        except (TypeError, ValueError):
            raise GainError(f"{controller}.gain_bounds[{name!r}] must be (low, high), "
                            f"got {pair!r}") from None
        if not low <= high:
            raise GainError(f"{controller}.gain_bounds[{name!r}] must have low <= high, "
                            f"got ({low:g}, {high:g})")
        out[str(name)] = (low, high)
    return out


def _check_one(controller: str, label: str, value: Any, positive: bool,
               bounds: tuple[float, float] | None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise GainError(f"{controller} gain {label} must be a number, got {value!r}")
    f = float(value)
    if not math.isfinite(f) or (positive and f <= 0):
        wanted = "finite and > 0" if positive else "finite"
        raise GainError(f"{controller} gain {label} must be {wanted}, got {value!r}")
    if abs(f) > MAX_GAIN or 0 < abs(f) < MIN_GAIN:
        raise GainError(f"{controller} gain {label} must be 0 or of magnitude in "
                        f"[{MIN_GAIN:g}, {MAX_GAIN:g}], got {value!r}")
    if bounds is not None and not bounds[0] <= f <= bounds[1]:
        raise GainError(f"{controller} gain {label} must be in [{bounds[0]:g}, {bounds[1]:g}] "
                        f"(the law's gain_bounds), got {value!r}")
    return f


def check_gains(controller: str, names: Sequence[str], gains: Any, *, positive: bool = True,
                bounds: Mapping[str, tuple[float, float]] | None = None) -> tuple[float, ...]:
    """The gains as floats, one per name (any number when `names` is empty); GainError naming
    the offending gain, its value and the range otherwise. `positive`: each must be > 0;
    `bounds`: the law's declared range per gain name (see `declared_bounds`)."""
    if isinstance(gains, (str, bytes)) or not hasattr(gains, "__iter__"):
        listed = f"{len(names)} numbers [{', '.join(names)}]" if names else "numbers"
        raise GainError(f"{controller} gains must be a list of {listed}, got {gains!r}")
    values = tuple(gains)
    if names and len(values) != len(names):
        raise GainError(
            f"{controller} takes {len(names)} gains [{', '.join(names)}], got {len(values)}")
    out = []
    for i, v in enumerate(values):
        name = names[i] if names else f"#{i}"
        out.append(_check_one(controller, f"{name} (index {i})", v, positive,
                              (bounds or {}).get(name)))
    return tuple(out)
