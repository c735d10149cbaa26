"""Pure plant models (numba kernels, frozen params, no I/O) and their registry.

Imported by the plant server to simulate and by the control laws as their nominal model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# First: installs numba's dependency-aware cache locator before any kernel is decorated.
from hil.dynamics import jit  # noqa: F401
from hil.dynamics.base import DEFAULT_SUBSTEPS, ModelParams, PlantModel
from hil.dynamics.cartpole import CartPoleModel, CartPoleParams
from hil.dynamics.dip import DIPModel, DIPParams

MODELS: dict[str, type[PlantModel]] = {"dip": DIPModel, "cartpole": CartPoleModel}


def create_model(
    name: str, params: Mapping[str, Any] | None = None, substeps: int = DEFAULT_SUBSTEPS
) -> PlantModel:
    """The model registered as ``name``, with ``params`` overriding its default parameters.

    Unknown names and unknown parameter keys raise ValueError listing the allowed ones.
    """
    try:
        model_type = MODELS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown plant model {name!r}; known models: {', '.join(sorted(MODELS))}"
        ) from None
    model_params = model_type.params_type.from_mapping(params or {})
    return model_type(model_params, substeps=substeps)


__all__ = [
    "DEFAULT_SUBSTEPS",
    "MODELS",
    "CartPoleModel",
    "CartPoleParams",
    "DIPModel",
    "DIPParams",
    "ModelParams",
    "PlantModel",
    "create_model",
]
