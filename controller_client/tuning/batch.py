"""Closed-loop evaluations in batches: every candidate x plant draw x start in one call.

`run_batch` evaluates a whole generation at once. For a law with a numba kernel (every
`KernelLaw`) it is one compiled call (`_batch_kernel`, `prange` over the evaluations, the GIL
released, threads across cores: `numba.set_num_threads`); a law that only has a Python
`compute(state, t)` runs the same loop in Python (`_python_batch`), much slower but with the
same figures. Each evaluation is independent of the others and of how they are split over
threads, processes or machines, so a batch gives the same numbers wherever it runs.

One evaluation: the law, built with the candidate gains on the nominal model, drives the
drawn plant (its own packed parameters) from a start for `steps` periods. The control
computed from the state at step k reaches the plant `delay` of a period later, as in
`simulation.simulate` (1.0: a realtime run, where the plant applies the newest control at its
next tick; 0.0: lockstep). It stops early when the run would trip the plant's safety gates
(a link past `angle_limit_rad`, the cart past `track_limit_m`, a non-finite state).

The figures per evaluation (columns of the metrics array, see `M_*`) are integrals over the
steps survived: angle ISE (theta1^2 + theta2^2, rad^2 s), cart ISE (x^2, m^2 s), effort
(u^2, N^2 s), chattering (total variation of the force, sum |u_k - u_(k-1)|, N), whether it
fell, and the steps it ran. `problem.evaluation_costs` weighs them.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import cfunc, njit, prange, types

from hil.dynamics.dip import rk4_step_kernel

M_ANGLE, M_CART, M_EFFORT, M_CHATTER, M_FALLEN, M_STEPS = range(6)
METRICS = 6

# A law kernel's signature: (state, mem, g, o, p, scratch) -> force (base.KernelLaw).
_VECTOR, _MATRIX = types.Array(types.float64, 1, "C"), types.Array(types.float64, 2, "C")
KERNEL_SIGNATURE = types.float64(_VECTOR, _VECTOR, _VECTOR, _VECTOR, _VECTOR, _MATRIX)
_kernel_functions: dict[Any, Any] = {}
_kernel_functions_lock = threading.Lock()


def kernel_function(kernel: Any) -> Any:
    """`kernel` (a law's numba dispatcher) as a first-class function for the compiled loops.

    Passed as a dispatcher, the kernel's own type (which names that dispatcher object) is
    part of the loop's signature, so numba's disk cache never matches in a new process and
    every process (each Dask worker, each `hil tune`) compiled the parallel batch again, some
    30 s on a loaded machine. As a cfunc of the same Python source its type is the signature
    alone: the loops compile once per machine and load from the cache after, and the kernel
    is compiled (and cached) on its own. The arithmetic is the same code with the same
    options, so the figures are bit-identical. A kernel that is not a numba dispatcher is
    returned as it is.
    """
    py_func = getattr(kernel, "py_func", None)
    if py_func is None:
        return kernel
    with _kernel_functions_lock:
        compiled = _kernel_functions.get(kernel)
        if compiled is None:
            compiled = cfunc(KERNEL_SIGNATURE, cache=True)(py_func)
            _kernel_functions[kernel] = compiled
        return compiled


@dataclass(frozen=True)
class Scenario:
    """What every evaluation of a tuning shares: plants, starts, timing, limits."""

    plant_params: np.ndarray  # (K, 12) packed DIPParams of the drawn plants
    starts: np.ndarray  # (S, 6)
    steps: int
    dt_s: float
    substeps: int
    delay: float  # of a period, in [0, 1]
    angle_limit_rad: float
    track_limit_m: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.delay <= 1.0:
            raise ValueError(f"delay must be within [0, 1] of a period, got {self.delay!r}")
        if self.steps < 1 or self.substeps < 1:
            raise ValueError(f"steps and substeps must be >= 1, got {self.steps}, "
                             f"{self.substeps}")


@njit(nogil=True, cache=True)
def _advance(x, nxt, u, u_prev, delay, dt_s, substeps, plant_p):
    """One plant period: `u_prev` for the first `delay` of it, then `u` (zero-order hold)."""
    if delay > 0.0:
        rk4_step_kernel(x, u_prev, delay * dt_s, substeps, plant_p, nxt)
        if delay < 1.0:
            rk4_step_kernel(nxt, u, (1.0 - delay) * dt_s, substeps, plant_p, x)
        else:
            x[:] = nxt
    else:
        rk4_step_kernel(x, u, dt_s, substeps, plant_p, nxt)
        x[:] = nxt


@njit(nogil=True, cache=True)
def _tripped(x, angle_limit, track_limit):
    a = max(abs(x[1]), abs(x[2]))
    return not (a < angle_limit and abs(x[0]) < track_limit
                and abs(x[3]) < 1e3 and abs(x[4]) < 1e4 and abs(x[5]) < 1e4)


@njit(nogil=True, parallel=True, cache=True)
def _batch_kernel(kernel, gains, opts, law_p, mem0, scratch_rows, plant_p, starts, steps,
                  dt_s, substeps, delay, angle_limit, track_limit, out):
    """out[n, k, s, :] = the metrics of candidate n on plant k from start s.

    Row n of `gains`, `opts` and `mem0` are candidate n's kernel arrays (a law may derive its
    packed options and initial memory from its gains, as the LQR does).
    """
    n_cand, n_draw, n_start = out.shape[0], out.shape[1], out.shape[2]
    total = n_cand * n_draw * n_start
    for idx in prange(total):
        n = idx // (n_draw * n_start)
        k = (idx // n_start) % n_draw
        s = idx % n_start
        g = gains[n].copy()
        o = opts[n].copy()
        mem = mem0[n].copy()
        scratch = np.zeros((scratch_rows, 6))
        x = starts[s].copy()
        nxt = np.empty(6)
        p = plant_p[k]
        u_prev = 0.0
        angle = 0.0
        cart = 0.0
        effort = 0.0
        chatter = 0.0
        fallen = 0.0
        step = 0
        while step < steps:
            u = kernel(x, mem, g, o, law_p, scratch)
            if step > 0:
                chatter += abs(u - u_prev)
            _advance(x, nxt, u, u_prev, delay, dt_s, substeps, p)
            u_prev = u
            step += 1
            if _tripped(x, angle_limit, track_limit):
                fallen = 1.0
                break
            angle += (x[1] * x[1] + x[2] * x[2]) * dt_s
            cart += x[0] * x[0] * dt_s
            effort += u * u * dt_s
        out[n, k, s, M_ANGLE] = angle
        out[n, k, s, M_CART] = cart
        out[n, k, s, M_EFFORT] = effort
        out[n, k, s, M_CHATTER] = chatter
        out[n, k, s, M_FALLEN] = fallen
        out[n, k, s, M_STEPS] = step


def _python_batch(make_law: Callable[[Sequence[float]], Any], gains: np.ndarray,
                  scenario: Scenario, out: np.ndarray) -> None:
    """The same loop as `_batch_kernel` for a law with only `compute(state, t)`."""
    sc = scenario
    nxt = np.empty(6)
    for n in range(gains.shape[0]):
        law = make_law(tuple(float(v) for v in gains[n]))
        for k in range(sc.plant_params.shape[0]):
            p = sc.plant_params[k]
            for s in range(sc.starts.shape[0]):
                reset = getattr(law, "reset", None)
                if reset is not None:
                    reset()
                x = sc.starts[s].copy()
                u_prev = angle = cart = effort = chatter = fallen = 0.0
                step = 0
                while step < sc.steps:
                    u = float(law.compute(x.copy(), step * sc.dt_s))
                    if not math.isfinite(u):
                        fallen = 1.0
                        break
                    if step > 0:
                        chatter += abs(u - u_prev)
                    _advance(x, nxt, u, u_prev, sc.delay, sc.dt_s, sc.substeps, p)
                    u_prev = u
                    step += 1
                    if _tripped(x, sc.angle_limit_rad, sc.track_limit_m):
                        fallen = 1.0
                        break
                    angle += (x[1] * x[1] + x[2] * x[2]) * sc.dt_s
                    cart += x[0] * x[0] * sc.dt_s
                    effort += u * u * sc.dt_s
                out[n, k, s] = (angle, cart, effort, chatter, fallen, step)


def _owned(a: np.ndarray) -> np.ndarray:
    """A writable C-contiguous float64 copy: one array type, so one compiled batch kernel
    (a read-only array, such as a scenario built from `DIPParams.as_array()`, is another)."""
    return np.array(a, dtype=np.float64, order="C")


def has_kernel(law: Any) -> bool:
    """True when `law` can run inside the compiled batch (a KernelLaw's kernel and arrays)."""
    return callable(getattr(type(law), "kernel", None)) and hasattr(law, "kernel_arrays")


def run_batch(make_law: Callable[[Sequence[float]], Any], gains: np.ndarray,
              scenario: Scenario) -> np.ndarray:
    """Metrics (candidates, draws, starts, METRICS) of every gain row of `gains`.

    `make_law(gains)` builds the law (it raises on gains the law refuses). A candidate whose
    gains the law refuses must be filtered out before: every row here is evaluated.
    """
    gains = np.ascontiguousarray(gains, dtype=np.float64)
    sc = scenario
    out = np.zeros((gains.shape[0], sc.plant_params.shape[0], sc.starts.shape[0], METRICS))
    if gains.shape[0] == 0:
        return out
    probe = make_law(tuple(float(v) for v in gains[0]))
    if not has_kernel(probe):
        _python_batch(make_law, gains, sc, out)
        return out
    laws = [probe, *(make_law(tuple(float(v) for v in row)) for row in gains[1:])]
    arrays = [law.kernel_arrays() for law in laws]  # (mem, g, o, p, scratch) each
    mem0 = np.stack([a[0] for a in arrays])
    g = np.stack([a[1] for a in arrays])
    opts = np.stack([a[2] for a in arrays])
    law_p, scratch = arrays[0][3], arrays[0][4]
    _batch_kernel(kernel_function(type(probe).kernel), g, opts, law_p, mem0, scratch.shape[0],
                  _owned(sc.plant_params), _owned(sc.starts),
                  sc.steps, sc.dt_s, sc.substeps, sc.delay, sc.angle_limit_rad,
                  sc.track_limit_m, out)
    return out


def trajectory(make_law: Callable[[Sequence[float]], Any], gains: Sequence[float],
               scenario: Scenario, draw: int, start: int = 0
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(t_s, states (n + 1, 6), forces (n,)) of one evaluation, for plots; stops as it does."""
    sc = scenario
    law = make_law(gains)
    p = sc.plant_params[draw]
    x = sc.starts[start].copy()
    nxt = np.empty(6)
    states, forces = [x.copy()], []
    u_prev = 0.0
    for step in range(sc.steps):
        u = float(law.compute(x.copy(), step * sc.dt_s))
        _advance(x, nxt, u, u_prev, sc.delay, sc.dt_s, sc.substeps, p)
        u_prev = u
        states.append(x.copy())
        forces.append(u)
        if _tripped(x, sc.angle_limit_rad, sc.track_limit_m):
            break
    return np.arange(len(states)) * sc.dt_s, np.array(states), np.array(forces)
