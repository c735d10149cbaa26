"""Gain-vector validation shared by the control laws."""

from __future__ import annotations

import math
from collections.abc import Sequence


class GainError(ValueError):
    """A gain vector was rejected; the message names the controller and the gain."""


def check_gains(controller: str, names: Sequence[str], gains: Sequence[float]) -> tuple[float, ...]:
    """Return the gains as floats; raise GainError naming the offending gain."""
    if isinstance(gains, (str, bytes)) or not hasattr(gains, "__iter__"):
        raise GainError(f"{controller} gains must be a list of {len(names)} numbers "
                        f"[{', '.join(names)}], got {gains!r}")
    values = tuple(gains)
    if len(values) != len(names):
        raise GainError(
            f"{controller} takes {len(names)} gains [{', '.join(names)}], got {len(values)}"
        )
    out = []
    for i, (name, v) in enumerate(zip(names, values, strict=True)):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise GainError(f"{controller} gain {name} (index {i}) must be a number, got {v!r}")
        f = float(v)
        if not math.isfinite(f) or f <= 0:
            raise GainError(
                f"{controller} gain {name} (index {i}) must be finite and > 0, got {v!r}")
        out.append(f)
    return tuple(out)
