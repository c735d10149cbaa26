"""Control laws and the thread-safe registry that creates them by name.

A name is a built-in law, a law an installed package registers through the
`hil.controllers` entry point group, or `"module.path:ClassName"` (found first in the config
file's folder, `search_path`). Entry points and loaded classes are registered on first use
(`register_controller`), so later lookups are lock-free reads. A `KernelLaw` subclass is
used as it is; any other class is wrapped in `ExternalLaw` (the contract in
docs/extending.md).

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
from controller_client.controllers.external import ExternalLaw
from controller_client.controllers.gains import GainError
from controller_client.controllers.hybrid_adaptive_sta_smc import HybridAdaptiveSTASMC
from controller_client.controllers.lqr import LQR
from controller_client.controllers.sta_smc import STASMC
from controller_client.controllers.swingup import SwingUp
from hil.dynamics.plugins import PluginError, entry_point_names, load_object
from hil.runtime.atomic import AtomicCounter

CONTROLLERS_GROUP = "hil.controllers"

__all__ = [
    "ControllerSpec",
    "ExternalLaw",
    "GainError",
    "KernelLaw",
    "PluginError",
    "UnknownControllerError",
    "create_controller",
    "get_spec",
    "known_controllers",
    "register_controller",
    "registry_snapshot",
    "registry_statistics",
]


class UnknownControllerError(PluginError):
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


def _spec(cls: Any, name: str | None = None) -> ControllerSpec:
    if isinstance(cls, type) and issubclass(cls, KernelLaw):
        return ControllerSpec(name or cls.name, cls, tuple(cls.gain_names),
                              tuple(cls.default_gains))
    return ControllerSpec(name or getattr(cls, "__name__", str(cls)), cls,
                          tuple(getattr(cls, "gain_names", ())),
                          tuple(getattr(cls, "default_gains", ())))


_write_lock = threading.Lock()
_snapshot: Mapping[str, ControllerSpec] = MappingProxyType(
    {c.name: _spec(c) for c in (ClassicalSMC, STASMC, AdaptiveSMC, HybridAdaptiveSTASMC, LQR)}
    | {SwingUp.name: _spec(SwingUp, SwingUp.name)})
_version = AtomicCounter()
_created = AtomicCounter()
_rejected = AtomicCounter()


def registry_snapshot() -> Mapping[str, ControllerSpec]:
    """The current registry: an immutable mapping name -> spec (lock-free)."""
    return _snapshot


def known_controllers() -> list[str]:
    return sorted(_snapshot)


def get_spec(name: str, search_path: Sequence[str] = ()) -> ControllerSpec:
    """The spec registered as `name`; an entry point or "module:Class" is loaded and
    registered on first use. UnknownControllerError (or PluginError) says what is allowed."""
    snap = _snapshot
    try:
        return snap[name]
    except (KeyError, TypeError):
        pass
    if not isinstance(name, str):
        raise UnknownControllerError(f"controller.name must be a string, got {name!r}")
    try:
        found = load_object(name, key="controller.name", group=CONTROLLERS_GROUP,
                            search_path=search_path, builtins=snap)
    except PluginError as exc:
        if ":" in name:
            raise
        raise UnknownControllerError(
            f"unknown controller {name!r}; known controllers: {', '.join(sorted(snap))}"
            f"{_installed()}. A law of your own: \"module.path:ClassName\" (docs/extending.md)"
        ) from exc
    spec = _spec(found, name)
    register_controller(spec, replace=True)
    return spec


def _installed() -> str:
    names = entry_point_names(CONTROLLERS_GROUP)
    return f"; installed ({CONTROLLERS_GROUP}): {', '.join(names)}" if names else ""


def create_controller(name: str, gains: Sequence[float] | None = None, *,
                      search_path: Sequence[str] = (), **context: Any) -> Any:
    """A fresh controller instance (default gains if `gains` is None).

    `context`: dt_s, max_force_n, plant (the description), model, and the law's options
    (for built-in laws as keywords; for other laws under `options`). Unknown names raise
    UnknownControllerError listing the known ones; bad gains GainError naming the gain; a
    class that does not fit the contract PluginError; bad options ValueError naming them.
    """
    try:
        factory = get_spec(name, search_path).factory
        if isinstance(factory, type) and issubclass(factory, KernelLaw):
            options = {**context.pop("options", {}), **context}
            law = factory(gains=gains, **options)
        else:
            law = ExternalLaw(factory, name, gains, _external_context(context))
    except (ValueError, TypeError):
        _rejected.increment()
        raise
    _created.increment()
    return law


def _external_context(context: dict[str, Any]) -> dict[str, Any]:
    ctx = {"dt_s": 1e-3, "max_force_n": None, "plant": None, "model": None, "options": {}}
    ctx.update(context)
    if ctx["max_force_n"] is None:
        ctx["max_force_n"] = float(ctx["model"].max_force_n) if ctx["model"] is not None \
            else 150.0
    return ctx


def register_controller(spec: ControllerSpec, *, replace: bool = False) -> None:
    """Add (or with `replace`, overwrite) a controller; readers see the new snapshot at once."""
    global _snapshot
    with _write_lock:
        if spec.name in _snapshot and not replace:
            raise ValueError(f"controller {spec.name!r} is already registered")
        _snapshot = MappingProxyType({**_snapshot, spec.name: spec})
        _version.increment()


def registry_statistics() -> RegistryStatistics:
    return RegistryStatistics(_version.get(), _created.get(), _rejected.get())
