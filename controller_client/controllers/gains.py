"""Gain-vector validation shared by the control laws."""

from __future__ import annotations

import math
from collections.abc import Sequence


def check_gains(controller: str, names: Sequence[str], gains: Sequence[float]) -> tuple[float, ...]:
    """Return the gains as floats; raise ValueError naming the offending gain."""
    values = tuple(gains)
    if len(values) != len(names):
        raise ValueError(
            f"{controller} takes {len(names)} gains [{', '.join(names)}], got {len(values)}"
        )
    out = []
    for name, v in zip(names, values, strict=True):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ValueError(f"{controller} gain {name} must be a number, got {v!r}")
        f = float(v)
        if not math.isfinite(f) or f <= 0:
            raise ValueError(f"{controller} gain {name} must be finite and > 0, got {v!r}")
        out.append(f)
    return tuple(out)
