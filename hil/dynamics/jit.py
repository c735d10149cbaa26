"""numba's on-disk cache, made safe for kernels that call kernels in other files.

numba keys a cached function on its own source file only: a control law's kernel that
inlines the plant model's derivative kernel would keep running an old copy of the model
after `hil/dynamics/dip.py` changed. `DependencyStampLocator` adds to that key a hash of
every source file under the package roots that hold our kernels (hil/dynamics and
controller_client), so any change there recompiles every cached kernel of those roots once.
Installing it (on import of `hil.dynamics`) puts it first in numba's locator list (with its
twin for `NUMBA_CACHE_DIR`, which numba honours first); other code keeps numba's locators.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

from numba.core import caching

_HERE = Path(__file__).resolve().parent
# Package roots whose kernels call into each other (hil.dynamics and the control laws).
KERNEL_ROOTS: tuple[Path, ...] = (_HERE, _HERE.parent.parent / "controller_client")


@functools.cache
def tree_stamp(roots: tuple[Path, ...] = KERNEL_ROOTS) -> str:
    """A hash of the contents of every .py file under `roots` (read once per process)."""
    digest = hashlib.sha256()
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _under(path: Path, roots: tuple[Path, ...]) -> bool:
    return any(path.is_relative_to(root) for root in roots)


class _DependencyStamp:
    """Mixin: a numba locator whose source stamp also covers the kernel roots' sources."""

    roots: tuple[Path, ...] = KERNEL_ROOTS

    def get_source_stamp(self) -> Any:
        own = super().get_source_stamp()  # type: ignore[misc]
        return (own, tree_stamp(self.roots))

    @classmethod
    def from_function(cls, py_func: Any, py_file: str) -> Any:
        if not _under(Path(py_file).resolve(), cls.roots):
            return None
        return super().from_function(py_func, py_file)  # type: ignore[misc]


class DependencyStampLocator(_DependencyStamp, caching.InTreeCacheLocator):
    """numba's in-tree cache (beside the source), keyed also on the kernel roots' sources."""


class DependencyStampUserLocator(_DependencyStamp, caching.UserProvidedCacheLocator):
    """The same under `NUMBA_CACHE_DIR` when it is set (numba's own order: that one first)."""


LOCATORS = (DependencyStampUserLocator, DependencyStampLocator)


def install() -> None:
    """Put our locators first in numba's list, in numba's own order (idempotent)."""
    classes = caching.CacheImpl._locator_classes
    for locator in reversed(LOCATORS):
        if locator not in classes:
            classes.insert(0, locator)

install()
