"""A config file naming an FMU plant, and the model the runtime builds from it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hil.config import build_plant_model, load_config


def write_config(folder: Path, fmu: Path, controller: str = "lqr", **plant: Any) -> Path:
    """`folder`/plant.yaml: `fmu` by a path relative to it (the FMU is linked beside it)."""
    folder.mkdir(parents=True, exist_ok=True)
    local = folder / fmu.name
    if not local.exists():
        local.symlink_to(fmu)
    plant.setdefault("initial_state", [0.0, 0.1, 0.0, 0.0])
    keys = "".join(f"  {k}: {json.dumps(v)}\n" for k, v in plant.items())
    config = folder / "plant.yaml"
    config.write_text(f"controller: {{name: {json.dumps(controller)}}}\n"
                      f"plant:\n  model: fmu\n  fmu: {fmu.name}\n{keys}"
                      "run: {duration_s: 3.0}\n")
    return config


def fmu_model(folder: Path, fmu: Path, **plant: Any) -> Any:
    return build_plant_model(load_config(write_config(folder, fmu, **plant)))
