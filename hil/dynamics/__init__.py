"""Pure plant models (numba kernels, frozen params, no I/O) and their registry.

Imported by the plant server to simulate and by the control laws as their nominal model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# First: installs numba's dependency-aware cache locator before any kernel is decorated.
from hil.dynamics import jit  # noqa: F401
from hil.dynamics.base import DEFAULT_SUBSTEPS, ModelParams, PlantModel
from hil.dynamics.cartpole import CartPoleModel, CartPoleParams
from hil.dynamics.contract import PlantStepError
from hil.dynamics.dip import DIPModel, DIPParams
from hil.dynamics.generic import ExternalModel
from hil.dynamics.helicopter import HelicopterModel, HelicopterParams
from hil.dynamics.plugins import PluginError, load_object
from hil.dynamics.rotary import RotaryModel, RotaryParams

# And "fmu": an FMU (plant.fmu), loaded by create_model.
MODELS: dict[str, type[PlantModel]] = {
    "dip": DIPModel, "cartpole": CartPoleModel, "rotary": RotaryModel,
    "helicopter": HelicopterModel}
PLANTS_GROUP = "hil.plants"


def create_model(
    name: str, params: Mapping[str, Any] | None = None, substeps: int = DEFAULT_SUBSTEPS,
    search_path: Sequence[str] = (), fmu: str | None = None,
    fmu_outputs: Sequence[str] | None = None,
) -> Any:
    """The model ``name`` names, with ``params`` overriding its default parameters.

    ``name`` is a built-in model, an entry point of group ``hil.plants``, or
    ``"module.path:Class"`` (found first in ``search_path``): a `PlantModel` subclass, or any
    class with the plant contract of `hil.dynamics.generic`, wrapped in an `ExternalModel`.
    Unknown names and parameter keys raise ValueError (PluginError) saying what is allowed.
    ``"fmu"`` is the FMU at the path ``fmu`` (`hil.dynamics.fmu`; ``fmu_outputs``: a
    co-simulation FMU's outputs read as the state), loaded with fmpy only then.
    """
    if name == "fmu":
        from hil.dynamics.fmu import load_fmu_model

        return load_fmu_model(fmu, params or {}, substeps,
                              None if fmu_outputs is None else list(fmu_outputs))
    model_type: Any = MODELS.get(name) if isinstance(name, str) else None
    if model_type is None:
        model_type = load_object(str(name), key="plant.model", group=PLANTS_GROUP,
                                 search_path=search_path, builtins=(*MODELS, "fmu"))
    if isinstance(model_type, type) and issubclass(model_type, PlantModel):
        model_params = model_type.params_type.from_mapping(params or {})
        return model_type(model_params, substeps=substeps)
    return ExternalModel(model_type, params or {}, substeps, key="plant.model")


def check_model(model: Any, initial_state: Sequence[float]) -> None:
    """PluginError unless `model` (an external one or an FMU) gives finite derivatives of the
    right shape at `initial_state` (an FMU run as co-simulation: starts there); built-in
    models are checked by their tests."""
    check_at = getattr(model, "check_at", None)
    if check_at is not None:
        check_at(initial_state)


__all__ = [
    "DEFAULT_SUBSTEPS",
    "MODELS",
    "CartPoleModel",
    "CartPoleParams",
    "DIPModel",
    "DIPParams",
    "ExternalModel",
    "HelicopterModel",
    "HelicopterParams",
    "ModelParams",
    "PlantModel",
    "PlantStepError",
    "PluginError",
    "RotaryModel",
    "RotaryParams",
    "check_model",
    "create_model",
]
