"""Closed-loop simulation of a control law on the DIP, compiled, and PSO-style gain tuning.

`simulate` runs a law's own numba kernel against the plant model's RK4 kernel in one compiled
loop (no Python per step, the GIL released), on copies of the law's arrays: the law object
is not touched, so concurrent simulations of one law share nothing. The control computed
from the state at step k reaches the plant `delay` of a period later (0: lockstep; 1: a full
period, an upper bound of what the realtime link adds; the plant integrates piecewise, as
the plant server does).

`fitness` scores a gain vector from one or more starts; every evaluation builds its own
controller through the registry. `pso` is a small deterministic particle-swarm optimiser
over gain vectors that evaluates each generation in a thread pool.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from controller_client.controllers import GainError, create_controller
from controller_client.tuning.batch import kernel_function
from hil.dynamics.dip import rk4_step_kernel

DEFAULT_STARTS = ((0.0, 0.1, -0.05, 0.0, 0.0, 0.0),)
DIVERGED_RAD = 1.0  # a link past this angle counts as fallen
FALLEN_COST = 1000.0
# Cost weights per second: link angles, cart position, force (N^2).
W_ANGLE, W_CART, W_FORCE = 1.0, 0.1, 1e-6

_M_COST, _M_MAX_ANGLE, _M_SATURATED, _M_STEPS, _M_FALLEN = range(5)


@njit(nogil=True, cache=True)
def _closed_loop(kernel, x0, mem, g, o, p, scratch, steps, dt_s, substeps, delay, traj,
                 metrics):
    """Run `steps` periods; write the final state into x0, figures into metrics."""
    x = x0
    nxt = np.empty(6)
    u_prev = 0.0
    limit = o[0]
    cost = 0.0
    max_angle = 0.0
    saturated = 0
    record = traj.shape[0] > 0
    if record:
        traj[0, :] = x
    fallen = 0
    k = 0
    while k < steps:
        u = kernel(x, mem, g, o, p, scratch)
        if abs(u) >= limit:
            saturated += 1
        if delay > 0.0:
            rk4_step_kernel(x, u_prev, delay * dt_s, substeps, p, nxt)
            if delay < 1.0:
                rk4_step_kernel(nxt, u, (1.0 - delay) * dt_s, substeps, p, x)
            else:
                x[:] = nxt
        else:
            rk4_step_kernel(x, u, dt_s, substeps, p, nxt)
            x[:] = nxt
        u_prev = u
        k += 1
        a = max(abs(x[1]), abs(x[2]))
        if not (a < DIVERGED_RAD and abs(x[0]) < 1e3 and abs(x[3]) < 1e3):
            fallen = 1
            break
        max_angle = max(max_angle, a)
        cost += (W_ANGLE * (x[1] * x[1] + x[2] * x[2]) + W_CART * x[0] * x[0]
                 + W_FORCE * u * u) * dt_s
        if record:
            traj[k, :] = x
    metrics[_M_COST] = cost
    metrics[_M_MAX_ANGLE] = max_angle
    metrics[_M_SATURATED] = saturated
    metrics[_M_STEPS] = k
    metrics[_M_FALLEN] = fallen


@dataclass(frozen=True)
class SimResult:
    final_state: tuple[float, ...]
    cost: float  # integral of the weighted squares (see W_*); FALLEN_COST added if it fell
    max_angle_rad: float
    saturated_steps: int
    steps: int
    fallen: bool

    @property
    def upright(self) -> bool:
        return not self.fallen and max(abs(self.final_state[1]), abs(self.final_state[2])) < 0.02


def simulate(law: Any, x0: Sequence[float], duration_s: float = 5.0, *, substeps: int = 4,
             delay: float = 1.0, trajectory: np.ndarray | None = None) -> SimResult:
    """Simulate `law` (its kernel, on fresh copies of its arrays) from `x0` at its own rate.

    `trajectory`, if given, is filled with the state at every step (shape (steps + 1, 6)).
    """
    if not 0.0 <= delay <= 1.0:
        raise ValueError(f"delay must be within [0, 1] of a period, got {delay!r}")
    steps = round(duration_s / law.dt_s)
    traj = np.zeros((0, 6)) if trajectory is None else trajectory
    if trajectory is not None and trajectory.shape != (steps + 1, 6):
        raise ValueError(f"trajectory must have shape ({steps + 1}, 6), got {trajectory.shape}")
    x = np.array(x0, dtype=np.float64)
    metrics = np.zeros(5)
    mem, g, o, p, scratch = law.kernel_arrays()
    _closed_loop(kernel_function(type(law).kernel), x, mem, g, o, p, scratch, steps, law.dt_s,
                 substeps, delay, traj, metrics)
    fallen = bool(metrics[_M_FALLEN])
    cost = float(metrics[_M_COST])
    if fallen:  # falling early costs more than falling late
        cost += FALLEN_COST * (1.0 + (steps - metrics[_M_STEPS]) / steps)
    return SimResult(tuple(float(v) for v in x), cost, float(metrics[_M_MAX_ANGLE]),
                     int(metrics[_M_SATURATED]), int(metrics[_M_STEPS]), fallen)


def fitness(name: str, gains: Sequence[float], starts: Sequence[Sequence[float]] = DEFAULT_STARTS,
            duration_s: float = 3.0, delay: float = 1.0, **options: Any) -> float:
    """Summed cost of a fresh `name` controller with `gains` from each start (lower is better).

    Gains the registry rejects (non-positive, non-finite) score infinity; an unknown name or
    bad options raise.
    """
    try:
        law = create_controller(name, gains, **options)
    except GainError:
        return math.inf
    return sum(simulate(law, x0, duration_s, delay=delay).cost for x0 in starts)


@dataclass(frozen=True)
class PSOResult:
    best_gains: tuple[float, ...]
    best_cost: float
    evaluations: int


def pso(name: str, lower: Sequence[float], upper: Sequence[float], *, particles: int = 12,
        iterations: int = 10, seed: int = 0, workers: int = 4, inertia: float = 0.7,
        cognitive: float = 1.5, social: float = 1.5, **fitness_kwargs: Any) -> PSOResult:
    """Minimise `fitness(name, gains, **fitness_kwargs)` within the box [lower, upper].

    Deterministic for a seed: each generation is evaluated in parallel but scored in order.
    """
    lo, hi = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
    rng = np.random.default_rng(seed)
    pos = lo + rng.random((particles, lo.size)) * (hi - lo)
    vel = np.zeros_like(pos)
    best_pos, best_cost = pos.copy(), np.full(particles, math.inf)
    evaluations = 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in range(iterations):
            costs = list(pool.map(lambda v: fitness(name, tuple(v), **fitness_kwargs), pos))
            evaluations += len(costs)
            for i, c in enumerate(costs):
                if c < best_cost[i]:
                    best_cost[i], best_pos[i] = c, pos[i]
            lead = best_pos[int(np.argmin(best_cost))]
            r1, r2 = rng.random(pos.shape), rng.random(pos.shape)
            vel = inertia * vel + cognitive * r1 * (best_pos - pos) + social * r2 * (lead - pos)
            pos = np.clip(pos + vel, lo, hi)
    i = int(np.argmin(best_cost))
    return PSOResult(tuple(float(v) for v in best_pos[i]), float(best_cost[i]), evaluations)
