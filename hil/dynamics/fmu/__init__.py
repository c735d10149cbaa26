"""Plants from FMUs (Functional Mock-up Units, FMI 2.0), through FMPy: `plant.model: fmu`.

`load_fmu_model(path, params, substeps, outputs)` reads the FMU's modelDescription.xml
(`description`: the mapping rules), loads and initialises one instance (`instance`), and
returns the plant model (`model`): model exchange integrated by the runtime's RK4, or
co-simulation stepped by the FMU. The step's FMI calls are made from compiled code
(`kernels`). docs/fmu.md is the user's guide. fmpy is imported only when an FMU is loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hil.dynamics.fmu.description import KEY, FmuError


def load_fmu_model(path: str | Path | None, params: Mapping[str, Any], substeps: int,
                   outputs: list[str] | None = None) -> Any:
    """The plant of the FMU at `path`; FmuError naming the problem and the fix."""
    if path is None:
        raise FmuError("plant.model fmu needs plant.fmu: the path of the .fmu file (relative "
                       "to the config file's folder)")
    fmu_path = Path(path)
    if not fmu_path.is_file():
        raise FmuError(f"{KEY}: {fmu_path} is not a file; give the path of the .fmu "
                       f"(relative to the config file's folder)")
    from hil.dynamics.fmu.description import read_plan
    from hil.dynamics.fmu.instance import FmuInstance
    from hil.dynamics.fmu.model import FmuCoSimulation, FmuModelExchange

    md = _model_description(fmu_path)
    plan = read_plan(md, None if outputs is None else list(outputs))
    instance = FmuInstance(fmu_path, md, plan, params)
    kind = FmuModelExchange if plan.kind == "model_exchange" else FmuCoSimulation
    return kind(instance, substeps, dict(params))


def _model_description(path: Path) -> Any:
    import zipfile

    from fmpy import read_model_description  # type: ignore[import-untyped]

    try:
        return read_model_description(str(path))
    except zipfile.BadZipFile:
        raise FmuError(f"{KEY}: {path} is not an FMU: not a zip archive (an FMU is a zip of "
                       f"modelDescription.xml, binaries/ and sources/)") from None
    except KeyError:
        raise FmuError(f"{KEY}: {path} has no modelDescription.xml at its top level; is it an "
                       f"FMU?") from None
    except Exception as exc:
        raise FmuError(f"{KEY}: {path}: its modelDescription.xml is not valid: "
                       f"{' '.join(str(exc).split())}") from None


__all__ = ["FmuError", "load_fmu_model"]
