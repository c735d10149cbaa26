"""Find a lab's own class by name: `"module.path:Class"` or an entry point.

Used for control laws (`controller.name`, entry point group `hil.controllers`) and plant
models (`plant.model`, group `hil.plants`). The config file's folder is searched first, so a
`mylaw.py` beside the YAML is found as `"mylaw:MyLaw"` without installing anything.

Every failure is a `PluginError` whose message says what was wrong and how to fix it; the
processes turn it into exit status 2.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import sys
import traceback
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


class PluginError(ValueError):
    """A named class could not be found or does not fit its contract."""


def add_search_path(dirs: Sequence[str]) -> None:
    """Put `dirs` first on the import path (once each)."""
    for d in reversed(dirs):
        if d and d not in sys.path:
            sys.path.insert(0, d)


def _prefer_search_path(top: str, search_path: Sequence[str]) -> None:
    """Make `top` (a module's first name) come from the first folder of `search_path` that
    holds it: that folder first on the import path, and a module of that name imported from
    elsewhere (another config's folder, earlier in this process: `hil sweep`'s probe, a
    test) forgotten, with its submodules, so that the import reads this folder's file."""
    folder = next((d for d in search_path if d and (
        Path(d, f"{top}.py").is_file() or Path(d, top, "__init__.py").is_file())), None)
    if folder is None:
        return
    if sys.path[0] != folder:
        with contextlib.suppress(ValueError):
            sys.path.remove(folder)
        sys.path.insert(0, folder)
    loaded = sys.modules.get(top)
    where = getattr(loaded, "__file__", None)
    if loaded is not None and (where is None or
                               Path(where).resolve().parent not in _folders(folder, top)):
        for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
            del sys.modules[name]
        importlib.invalidate_caches()


def _folders(folder: str, top: str) -> tuple[Path, Path]:
    """Where `top` from `folder` lives: the folder (a module) or its own (a package)."""
    base = Path(folder).resolve()
    return base, base / top


def entry_point_names(group: str) -> list[str]:
    return sorted({ep.name for ep in importlib.metadata.entry_points(group=group)})


def load_object(spec: str, *, key: str, group: str, search_path: Sequence[str],
                builtins: Iterable[str] = ()) -> Any:
    """The object `spec` names: "module.path:Attr", or an entry point of `group`.

    `key` is the config key that holds `spec` (for the messages); `builtins` are the names the
    caller resolves itself, listed when nothing matches.
    """
    if ":" in spec:
        return _from_module(spec, key, search_path)
    for ep in importlib.metadata.entry_points(group=group):
        if ep.name == spec:
            try:
                return ep.load()
            except Exception as exc:
                raise PluginError(
                    f"{key}: entry point {spec!r} of group {group} ({ep.value}) failed to load: "
                    f"{type(exc).__name__}: {exc}") from None
    known = sorted(set(builtins) | set(entry_point_names(group)))
    raise PluginError(
        f"{key}: unknown name {spec!r}; built in or installed ({group} entry points): "
        f"{', '.join(known) or 'none'}. A class of your own is named \"module.path:ClassName\", "
        f"e.g. \"mylaw:MyLaw\" for class MyLaw in mylaw.py beside the config file")


def _from_module(spec: str, key: str, search_path: Sequence[str]) -> Any:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr or ":" in attr:
        raise PluginError(f"{key}: {spec!r} is not \"module.path:ClassName\" (one colon, a "
                          f"module before it and a class after it)")
    add_search_path(search_path)
    _prefer_search_path(module_name.partition(".")[0], search_path)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        if module_name == missing or module_name.startswith(missing + "."):
            where = [d for d in search_path if d] + [p for p in sys.path if p not in search_path]
            raise PluginError(
                f"{key}: module {module_name!r} not found (from {spec!r}). Searched, in order: "
                f"{', '.join(where[:6])}{', ...' if len(where) > 6 else ''}. Put "
                f"{module_name.replace('.', '/')}.py beside the config file "
                f"({search_path[0] if search_path else 'its folder'}) or install the package "
                f"that holds it") from None
        raise PluginError(f"{key}: importing {module_name!r} failed: it imports {missing!r}, "
                          f"which is not installed ({exc})") from None
    except Exception as exc:
        tb = traceback.extract_tb(exc.__traceback__)[-1:]
        at = f" at {tb[0].filename}:{tb[0].lineno}" if tb else ""
        raise PluginError(f"{key}: importing {module_name!r} failed{at}: "
                          f"{type(exc).__name__}: {exc}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        classes = sorted(n for n, v in vars(module).items()
                         if isinstance(v, type) and v.__module__ == module.__name__)
        raise PluginError(
            f"{key}: module {module_name!r} ({getattr(module, '__file__', '?')}) has no "
            f"{attr!r}; classes defined there: {', '.join(classes) or 'none'}") from None
