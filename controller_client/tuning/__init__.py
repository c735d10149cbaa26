"""Gain tuning: compiled closed-loop simulations, robust costs over plant draws, `hil tune`.

- `simulation`: one closed-loop simulation of a law (`simulate`), a fitness and a small PSO;
- `batch`: every candidate x plant draw x start of a generation in one compiled call;
- `problem`: the settings, the seeded draws, the bounds and the robust cost;
- `engine`: nevergrad ask/tell in batches, replay on resume;
- `remote`: the batches on a Dask cluster;
- `outputs`: tuning.json, tuned.yaml and tuning.html.

docs/tuning.md describes the workflow.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from controller_client.tuning.simulation import (
        DEFAULT_STARTS,
        FALLEN_COST,
        PSOResult,
        SimResult,
        fitness,
        pso,
        simulate,
    )

__all__ = ["DEFAULT_STARTS", "FALLEN_COST", "PSOResult", "SimResult", "fitness", "pso",
           "simulate"]


def __getattr__(name: str) -> Any:
    """The simulation's names, imported when first asked for: `hil tune` (python -m
    controller_client.tuning) checks its options before it imports numba and the laws, so a
    mistyped option is answered at once."""
    if name in __all__:
        return getattr(importlib.import_module("controller_client.tuning.simulation"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
