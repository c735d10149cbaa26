"""Control laws and the registry that creates them by name."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from controller_client.controllers.classical_smc import ClassicalSMC

_REGISTRY: dict[str, Callable[..., Any]] = {
    "classical_smc": ClassicalSMC,
}


def known_controllers() -> list[str]:
    return sorted(_REGISTRY)


def create_controller(name: str, gains: Sequence[float] | None = None, **options: Any) -> Any:
    """Create a fresh controller instance; unknown names list the known ones."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"unknown controller {name!r}; known controllers: {', '.join(known_controllers())}"
        ) from None
    return factory(gains=gains, **options)
