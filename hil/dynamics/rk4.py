"""Classic RK4 for the plants of two degrees of freedom (cart-pole, rotary pendulum): one
integrator, each model giving only its accelerations.

A model of two generalised coordinates q = (q0, q1) with state (q0, q1, q0', q1') writes
`accelerations(q0, q1, v0, v1, u, p) -> (q0'', q1'')` (numba, scalars in, a tuple out) and
calls `_rk4 = rk4_two_dof(_accelerations, "name")` once, then `_rk4(state, u, dt_s, substeps, p,
out)` from its own `rk4_step_kernel`. The integrator is unrolled over the four state
entries (scalars, no allocation) and the accelerations function is compiled into it, so a
model's step is as fast as its own copy was and bit-identical to it (same operations in the
same order).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from numba import njit


def rk4_two_dof(accelerations: Any, model: str) -> Callable[..., None]:
    """The step `rk4(state, u, dt_s, substeps, p, out)` of a model whose accelerations are
    `accelerations`: (q0, q1, v0, v1) advanced by `dt_s` in `substeps` RK4 steps, the input
    `u` held (the caller saturates it). `out` may be `state`. The accelerations are a
    constant of the compiled step (a closure), so numba's disk cache keeps each model's.

    Each model's step is named after `model` (`rk4_two_dof_<model>`): numba names compiled
    code and cache files after the function's qualified name, and two closures of one name
    loaded from the cache into one process would link to one body (the rotary then stepped
    with the cart-pole's accelerations)."""

    def rk4(state: Any, u: float, dt_s: float, substeps: int, p: Any, out: Any) -> None:
        h = dt_s / substeps
        q0, q1, v, w = state[0], state[1], state[2], state[3]
        for _ in range(substeps):
            # Stage k: positions advance with the previous stage's velocities (v_k, w_k),
            # velocities with its accelerations (a_k, b_k).
            a1, b1 = accelerations(q0, q1, v, w, u, p)
            v2, w2 = v + 0.5 * h * a1, w + 0.5 * h * b1
            a2, b2 = accelerations(q0 + 0.5 * h * v, q1 + 0.5 * h * w, v2, w2, u, p)
            v3, w3 = v + 0.5 * h * a2, w + 0.5 * h * b2
            a3, b3 = accelerations(q0 + 0.5 * h * v2, q1 + 0.5 * h * w2, v3, w3, u, p)
            v4, w4 = v + h * a3, w + h * b3
            a4, b4 = accelerations(q0 + h * v3, q1 + h * w3, v4, w4, u, p)
            q0 += h / 6.0 * (v + 2.0 * (v2 + v3) + v4)
            q1 += h / 6.0 * (w + 2.0 * (w2 + w3) + w4)
            v += h / 6.0 * (a1 + 2.0 * (a2 + a3) + a4)
            w += h / 6.0 * (b1 + 2.0 * (b2 + b3) + b4)
        out[0], out[1], out[2], out[3] = q0, q1, v, w

    rk4.__name__ = rk4.__qualname__ = f"rk4_two_dof_{model}"
    return njit(cache=True)(rk4)
