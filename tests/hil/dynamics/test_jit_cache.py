"""numba's on-disk cache for our kernels keys on the sources they depend on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hil.dynamics import jit


def test_the_stamp_changes_when_any_dependency_source_changes(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("X = 1\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.py").write_text("Y = 2\n")
    before = jit.tree_stamp.__wrapped__((tmp_path,))
    assert jit.tree_stamp.__wrapped__((tmp_path,)) == before
    (tmp_path / "sub" / "b.py").write_text("Y = 3\n")
    assert jit.tree_stamp.__wrapped__((tmp_path,)) != before


def test_the_locator_is_first_and_covers_laws_and_models_only() -> None:
    from numba.core import caching

    from controller_client.controllers import nominal
    from hil.dynamics import dip

    assert tuple(caching.CacheImpl._locator_classes[:2]) == jit.LOCATORS
    for module in (nominal, dip):
        assert jit.DependencyStampLocator.from_function(
            nominal.saturate.py_func, module.__file__) is not None
    assert jit.DependencyStampLocator.from_function(
        nominal.saturate.py_func, caching.__file__) is None


def test_a_second_process_loads_the_laws_kernels_from_the_cache() -> None:
    code = (
        "import numpy as np\n"
        "from controller_client.controllers import create_controller\n"
        "law = create_controller('classical_smc')\n"
        "law.compute(np.zeros(6), 0.0)\n"
        "from controller_client.controllers.classical_smc import classical_smc_kernel as k\n"
        "print(sum(k.stats.cache_hits.values()), sum(k.stats.cache_misses.values()))\n"
    )
    run = [sys.executable, "-c", code]
    subprocess.run(run, check=True, capture_output=True)  # fills the cache if it was cold
    hits, misses = map(int, subprocess.run(run, check=True, capture_output=True,
                                           text=True).stdout.split())
    assert (hits, misses) == (1, 0)


def test_numba_cache_dir_is_honoured_with_the_dependency_stamp(tmp_path: Path) -> None:
    code = (
        "import numpy as np\n"
        "from controller_client.controllers import create_controller\n"
        "create_controller('lqr').compute(np.zeros(6), 0.0)\n"
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=env)
    cached = [p.name for p in tmp_path.rglob("*.nbi")]
    assert any("lqr" in name for name in cached), cached
