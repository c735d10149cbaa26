"""The one RK4 of the two-degree-of-freedom models (hil/dynamics/rk4.py), loaded from numba's
disk cache: each model keeps its own accelerations. Two steps of one name, each compiled in a
process of its own and then both loaded from the cache into one, once linked to one body
(numba's symbol names are the function's name and a per-process counter): the rotary
stepped with the cart-pole's accelerations."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CHECK = """
import numpy as np
from hil.dynamics import cartpole, rotary

def rk4(f, x, u, h, n):
    # classic RK4 on the model's own derivatives, written out here
    h = h / n
    for _ in range(n):
        k1 = f(x, u); k2 = f(x + 0.5 * h * k1, u); k3 = f(x + 0.5 * h * k2, u)
        k4 = f(x + h * k3, u)
        x = x + h / 6.0 * (k1 + 2.0 * (k2 + k3) + k4)
    return x

for name in {order}:
    module = {{"cartpole": cartpole, "rotary": rotary}}[name]
    p = {{"cartpole": cartpole.CartPoleParams, "rotary": rotary.RotaryParams}}[name]()
    x = np.array([0.1, 0.4, -0.3, 0.8]); out = np.empty(4)
    module.rk4_step_kernel(x, 2.0, 0.01, 4, p.as_array(), out)
    want = rk4(lambda s, u: module.derivatives(s, u, p), x, 2.0, 0.01, 4)
    assert np.allclose(out, want, rtol=1e-12, atol=1e-15), (name, out, want)
print("ok")
"""


def test_each_model_steps_with_its_own_accelerations_when_both_come_from_the_cache(
        tmp_path: Path) -> None:
    order = ("cartpole", "rotary")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}  # an empty cache of its own
    for models in ((order[0],), (order[1],), order):  # each compiled alone, then both loaded
        done = subprocess.run([sys.executable, "-c", CHECK.format(order=models)],
                              capture_output=True, text=True, timeout=300, check=False,
                              env=env)
        assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
