"""Control laws and the thread-safe registry that creates them by name.

Reads are lock-free: the registry is an immutable mapping (`MappingProxyType` over a dict
nobody else holds) published through one module attribute, and a reader takes the current
snapshot with a single reference load, which is atomic on CPython with or without the GIL
(on free-threaded builds a module attribute load is a single atomic read of the reference).
A writer builds a new mapping under `_write_lock` and swaps the reference, so readers see
either the old or the new registry, never half of an update, and writers never lose each
other's updates. The counters are `hil.runtime.atomic.AtomicCounter`s.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from controller_client.controllers.adaptive_smc import AdaptiveSMC
from controller_client.controllers.base import KernelLaw
from controller_client.controllers.classical_smc import ClassicalSMC
from controller_client.controllers.gains import GainError
from controller_client.controllers.hybrid_adaptive_sta_smc import HybridAdaptiveSTASMC
from controller_client.controllers.lqr import LQR
from controller_client.controllers.sta_smc import STASMC
from hil.runtime.atomic import AtomicCounter

__all__ = [
    "ControllerSpec",
    "GainError",
    "KernelLaw",
    "UnknownControllerError",
    "create_controller",
    "get_spec",
    "known_controllers",
    "register_controller",
    "registry_snapshot",
    "registry_statistics",
    "unregister_controller",
]


class UnknownControllerError(ValueError):
    """No controller is registered under that name; the message lists the known ones."""


@dataclass(frozen=True)
class ControllerSpec:
    name: str
    factory: Callable[..., Any]
    gain_names: tuple[str, ...]
    default_gains: tuple[float, ...]


@dataclass(frozen=True)
class RegistryStatistics:
    version: int  # number of writes so far
    created: int  # controllers created
    rejected: int  # creations refused (unknown name, bad gains or options)


def _spec(cls: type[KernelLaw]) -> ControllerSpec:
    return ControllerSpec(cls.name, cls, tuple(cls.gain_names), tuple(cls.default_gains))


_write_lock = threading.Lock()
_snapshot: Mapping[str, ControllerSpec] = MappingProxyType(
    {c.name: _spec(c) for c in (ClassicalSMC, STASMC, AdaptiveSMC, HybridAdaptiveSTASMC, LQR)})
_version = AtomicCounter()
_created = AtomicCounter()
_rejected = AtomicCounter()


def registry_snapshot() -> Mapping[str, ControllerSpec]:
    """The current registry: an immutable mapping name -> spec (lock-free)."""
    return _snapshot


def known_controllers() -> list[str]:
    return sorted(_snapshot)


def get_spec(name: str) -> ControllerSpec:
    snap = _snapshot
    try:
        return snap[name]
    except (KeyError, TypeError):
        raise UnknownControllerError(
            f"unknown controller {name!r}; known controllers: {', '.join(sorted(snap))}"
        ) from None


def create_controller(name: str, gains: Sequence[float] | None = None, **options: Any) -> Any:
    """A fresh controller instance (default gains if `gains` is None).

    Unknown names raise UnknownControllerError listing the known ones; bad gains raise
    GainError naming the gain; bad options raise ValueError naming the option.
    """
    try:
        law = get_spec(name).factory(gains=gains, **options)
    except (ValueError, TypeError):
        _rejected.increment()
        raise
    _created.increment()
    return law


def register_controller(spec: ControllerSpec, *, replace: bool = False) -> None:
    """Add (or with `replace`, overwrite) a controller; readers see the new snapshot at once."""
    global _snapshot
    with _write_lock:
        if spec.name in _snapshot and not replace:
            raise ValueError(f"controller {spec.name!r} is already registered")
        _snapshot = MappingProxyType({**_snapshot, spec.name: spec})
        _version.increment()


def unregister_controller(name: str) -> None:
    global _snapshot
    with _write_lock:
        if name not in _snapshot:
            raise UnknownControllerError(f"unknown controller {name!r}")
        _snapshot = MappingProxyType({k: v for k, v in _snapshot.items() if k != name})
        _version.increment()


def registry_statistics() -> RegistryStatistics:
    return RegistryStatistics(_version.get(), _created.get(), _rejected.get())
