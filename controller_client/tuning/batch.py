"""Closed-loop evaluations in batches: every candidate x plant draw x start in one call, on
any plant, for any law.

One simulation core for every plant: each period the law computes the inputs from the state,
the gates judge them, the plant advances one period under a zero-order hold (`_advance`: the
control computed from state k acts `delay` of a period later: 1.0 in a realtime run, where
the plant applies the newest control at its next tick; 0.0 in lockstep) and the gates judge
the new state. When the law and the plant are both compiled (a built-in model or a lab's
plant with a `derivatives_kernel`, `plants.kind_of`; a law with a numba kernel that fits the
plant, `law_kernels`) a whole generation is one compiled call (`_batch_kernel`, `prange`
over the evaluations, the GIL released, threads across cores); otherwise the same loop runs
in Python (`_python_batch`: the law's own `compute`, the runtime's `model.step`) with the
same gates and figures (the same compiled functions judge and add them up). Each evaluation
depends only on its gains, draw and start, so a batch gives the same numbers wherever it runs.

The gates are the plant's safety gates (plants.py); an evaluation that trips one stops there
and records which (`M_GATE`, named in `GATES`). The figures per evaluation (columns `M_*`)
are integrals over the steps run: the regulated angles' squared error (rad^2 s), the other
positions' (m^2 s, or rad^2 s for a free arm), effort (the inputs' squared distance from the
trim, unit^2 s), chattering (total variation of the inputs, sum |u_k - u_(k-1)|), whether a
gate tripped, the steps run and the gate. `problem.evaluation_costs` weighs them.
"""

from __future__ import annotations

import inspect
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import cfunc, njit, prange, types

from controller_client.controllers.lqr import LQR, lqr_plant_kernel
from controller_client.tuning.plants import (
    DERIV_VECTOR,
    I_HIGH,
    I_LOW,
    I_SANITY,
    I_TRIM,
    PYTHON,
    S_ANGLE,
    S_PLAUSIBLE,
    S_POSITION,
    S_TARGET,
    S_WRAPS,
    STEP,
    PlantFacts,
    PlantSpec,
    function_of,
    plant_model,
    step_functions,
)
from hil.dynamics.generic import rk4_compiled

M_ANGLE, M_POSITION, M_EFFORT, M_CHATTER, M_FALLEN, M_STEPS, M_GATE = range(7)
METRICS = 7
GATES = ("", "non_finite_state", "implausible_state", "track", "angle", "non_finite_control",
         "implausible_control")
LAW_SCALAR, LAW_VECTOR = 0, 1

# A law kernel's signature: (state, mem, g, o, p, scratch) -> force (base.KernelLaw); a
# vector law kernel writes its inputs into its last argument.
_VECTOR, _MATRIX = types.Array(types.float64, 1, "C"), types.Array(types.float64, 2, "C")
KERNEL_SIGNATURE = types.float64(_VECTOR, _VECTOR, _VECTOR, _VECTOR, _VECTOR, _MATRIX)
VECTOR_KERNEL_SIGNATURE = types.void(_VECTOR, _VECTOR, _VECTOR, _VECTOR, _VECTOR, _MATRIX,
                                     _VECTOR)
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


@njit(nogil=True, cache=True)
def _lqr_plant(state, mem, g, o, p, scratch, u):
    """The LQR on any plant model (lqr.lqr_plant_kernel) as a vector law kernel."""
    lqr_plant_kernel(state, mem, o, u, scratch[0])


@njit(nogil=True, cache=True)
def _no_scalar_law(state, mem, g, o, p, scratch):
    return 0.0


@njit(nogil=True, cache=True)
def _no_vector_law(state, mem, g, o, p, scratch, u):
    u[:] = 0.0


def has_kernel(law: Any) -> bool:
    """True when `law` has a numba kernel and its arrays (a KernelLaw)."""
    return callable(getattr(type(law), "kernel", None)) and hasattr(law, "kernel_arrays")


def law_kernels(law: Any) -> tuple[int, Any, Any] | None:
    """(LAW_SCALAR or LAW_VECTOR, scalar kernel, vector kernel) of a law that can run in the
    compiled batch (the unused one a stand-in), or None: a law simulated in Python. The LQR
    designed on a plant model runs its plant kernel; the other built-in laws their kernel
    (they refuse plants it does not fit when they are built)."""
    if isinstance(law, LQR) and getattr(law, "x_eq", None) is not None:
        return (LAW_VECTOR, function_of(_no_scalar_law, KERNEL_SIGNATURE),
                function_of(_lqr_plant, VECTOR_KERNEL_SIGNATURE))
    if has_kernel(law):
        return (LAW_SCALAR, kernel_function(type(law).kernel),
                function_of(_no_vector_law, VECTOR_KERNEL_SIGNATURE))
    return None


@dataclass(frozen=True)
class Scenario:
    """What every evaluation of a tuning shares: the plant and its draws, starts, timing."""

    plant: PlantSpec
    draws: tuple[tuple[tuple[str, Any], ...], ...]  # each draw's plant.params
    plant_params: np.ndarray  # (K, P) packed parameters of the draws (built-in models)
    starts: np.ndarray  # (S, n)
    steps: int
    dt_s: float
    substeps: int
    delay: float  # of a period, in [0, 1]
    facts: PlantFacts

    def __post_init__(self) -> None:
        if not 0.0 <= self.delay <= 1.0:
            raise ValueError(f"delay must be within [0, 1] of a period, got {self.delay!r}")
        if self.steps < 1 or self.substeps < 1:
            raise ValueError(f"steps and substeps must be >= 1, got {self.steps}, "
                             f"{self.substeps}")
        if len(self.draws) != self.plant_params.shape[0]:
            raise ValueError(f"{len(self.draws)} draws but {self.plant_params.shape[0]} rows "
                             f"of packed parameters")

    @property
    def n_draws(self) -> int:
        return len(self.draws)


# --- the compiled core (also called from Python by the Python path) --------------------------


@njit(nogil=True, cache=True)
def _plant_step(kind, step, deriv_v, deriv_s, x, u, dt_s, substeps, p, inputs, out, work,
                held):
    """One held input over `dt_s`: the plant's own kernel, or RK4 over its derivatives with
    each input saturated at its limits (as ExternalModel.step). `work`: (5, n) rows."""
    if kind == STEP:
        step(x, u, dt_s, substeps, p, out)
        return
    for i in range(u.shape[0]):
        held[i] = min(max(u[i], inputs[I_LOW, i]), inputs[I_HIGH, i])
    if kind == DERIV_VECTOR:
        rk4_compiled(deriv_v, x, held, dt_s, substeps, out, work[0], work[1], work[2],
                     work[3], work[4])
    else:
        rk4_compiled(deriv_s, x, held[0], dt_s, substeps, out, work[0], work[1], work[2],
                     work[3], work[4])


@njit(nogil=True, cache=True)
def _advance(kind, step, deriv_v, deriv_s, x, nxt, u, u_prev, delay, dt_s, substeps, p,
             inputs, work, held):
    """One plant period: `u_prev` for the first `delay` of it, then `u` (zero-order hold)."""
    if delay > 0.0:
        _plant_step(kind, step, deriv_v, deriv_s, x, u_prev, delay * dt_s, substeps, p, inputs,
                    nxt, work, held)
        if delay < 1.0:
            _plant_step(kind, step, deriv_v, deriv_s, nxt, u, (1.0 - delay) * dt_s, substeps,
                        p, inputs, x, work, held)
        else:
            x[:] = nxt
    else:
        _plant_step(kind, step, deriv_v, deriv_s, x, u, dt_s, substeps, p, inputs, nxt, work,
                    held)
        x[:] = nxt


@njit(nogil=True, cache=True)
def control_gate(u, inputs):
    """The gate the inputs `u` trip (index into GATES), or 0."""
    for i in range(u.shape[0]):
        if not math.isfinite(u[i]):
            return 5
        if abs(u[i]) > inputs[I_SANITY, i]:
            return 6
    return 0


@njit(nogil=True, cache=True)
def _error(x, states, i):
    e = x[i] - states[S_TARGET, i]
    if states[S_WRAPS, i] != 0.0:
        e -= 2.0 * math.pi * math.floor((e + math.pi) / (2.0 * math.pi))
    return e


@njit(nogil=True, cache=True)
def state_gate(x, states, x_index, angle_limit, track_limit):
    """The gate the state `x` trips (index into GATES), or 0 (plant_server/safety.py)."""
    for i in range(x.shape[0]):
        if not math.isfinite(x[i]):
            return 1
        if abs(x[i]) > states[S_PLAUSIBLE, i]:
            return 2
    if x_index >= 0 and abs(x[x_index]) > track_limit:
        return 3
    for i in range(x.shape[0]):
        if states[S_ANGLE, i] != 0.0 and abs(_error(x, states, i)) > angle_limit:
            return 4
    return 0


@njit(nogil=True, cache=True)
def accumulate(x, u, states, inputs, dt_s, acc):
    """Add one period's angle, position and effort figures to acc[0:3]."""
    angle = 0.0
    position = 0.0
    for i in range(x.shape[0]):
        if states[S_ANGLE, i] != 0.0:
            e = _error(x, states, i)
            angle += e * e
        elif states[S_POSITION, i] != 0.0:
            e = _error(x, states, i)
            position += e * e
    effort = 0.0
    for i in range(u.shape[0]):
        d = u[i] - inputs[I_TRIM, i]
        effort += d * d
    acc[0] += angle * dt_s
    acc[1] += position * dt_s
    acc[2] += effort * dt_s


@njit(nogil=True, cache=True)
def chatter(u, u_prev):
    total = 0.0
    for i in range(u.shape[0]):
        total += abs(u[i] - u_prev[i])
    return total


@njit(nogil=True, cache=True)
def _evaluate(law_kind, law_s, law_v, g, o, law_p, mem, scratch, kind, step, deriv_v, deriv_s,
              p, x, steps, dt_s, substeps, delay, states, inputs, x_index, angle_limit,
              track_limit, metrics):
    """Run one evaluation from `x` (changed in place); its figures into `metrics`."""
    n, m = x.shape[0], inputs.shape[1]
    u, u_prev, held = np.zeros(m), np.zeros(m), np.zeros(m)
    nxt, work = np.empty(n), np.zeros((5, n))
    acc = np.zeros(4)
    gate = 0
    k = 0
    while k < steps:
        if law_kind == LAW_SCALAR:
            u[0] = law_s(x, mem, g, o, law_p, scratch)
        else:
            law_v(x, mem, g, o, law_p, scratch, u)
        gate = control_gate(u, inputs)
        if gate != 0:
            break
        if k > 0:
            acc[3] += chatter(u, u_prev)
        _advance(kind, step, deriv_v, deriv_s, x, nxt, u, u_prev, delay, dt_s, substeps, p,
                 inputs, work, held)
        u_prev[:] = u
        k += 1
        gate = state_gate(x, states, x_index, angle_limit, track_limit)
        if gate != 0:
            break
        accumulate(x, u, states, inputs, dt_s, acc)
    metrics[M_ANGLE], metrics[M_POSITION] = acc[0], acc[1]
    metrics[M_EFFORT], metrics[M_CHATTER] = acc[2], acc[3]
    metrics[M_FALLEN] = 1.0 if gate != 0 else 0.0
    metrics[M_STEPS] = k
    metrics[M_GATE] = gate


@njit(nogil=True, parallel=True, cache=True)
def _batch_kernel(law_kind, law_s, law_v, gains, opts, law_p, mem0, scratch_shape, kind, step,
                  deriv_v, deriv_s, plant_p, starts, steps, dt_s, substeps, delay, states,
                  inputs, x_index, angle_limit, track_limit, out):
    """out[n, k, s, :] = the metrics of candidate n on plant k from start s.

    Row n of `gains`, `opts` and `mem0` are candidate n's kernel arrays (a law may derive its
    packed options and initial memory from its gains, as the LQR does).
    """
    n_cand, n_draw, n_start = out.shape[0], out.shape[1], out.shape[2]
    for idx in prange(n_cand * n_draw * n_start):
        n = idx // (n_draw * n_start)
        k = (idx // n_start) % n_draw
        s = idx % n_start
        scratch = np.zeros((scratch_shape[0], scratch_shape[1]))
        _evaluate(law_kind, law_s, law_v, gains[n].copy(), opts[n].copy(), law_p,
                  mem0[n].copy(), scratch, kind, step, deriv_v, deriv_s, plant_p[k],
                  starts[s].copy(), steps, dt_s, substeps, delay, states, inputs, x_index,
                  angle_limit, track_limit, out[n, k, s])


# --- the Python path ---------------------------------------------------------------------------


def _advance_python(model: Any, x: np.ndarray, nxt: np.ndarray, u: np.ndarray,
                    u_prev: np.ndarray, delay: float, dt_s: float) -> None:
    """`_advance` through the runtime's own `model.step` (a plant without a kernel)."""
    if delay > 0.0:
        model.step(x, u_prev, delay * dt_s, nxt)
        if delay < 1.0:
            model.step(nxt, u, (1.0 - delay) * dt_s, x)
        else:
            x[:] = nxt
    else:
        model.step(x, u, dt_s, nxt)
        x[:] = nxt


def takes_target(law: Any) -> bool:
    """Whether the law's compute needs the run's target too: compute(state, t, target)."""
    try:
        inspect.signature(law.compute).bind(np.zeros(1), 0.0)
    except TypeError:
        return True
    except ValueError:  # no signature to read (a compiled callable): the two-argument form
        return False
    return False


def law_inputs(law: Any, x: np.ndarray, t_s: float, m: int, target: np.ndarray | None
               ) -> np.ndarray:
    """The law's inputs for `x` as m floats (NaN where it returned something else); the
    target (the plant's equilibrium: a tuning has no references) to a law that takes it."""
    try:
        if target is None:
            out = law.compute(x.copy(), t_s)
        else:
            out = law.compute(x.copy(), t_s, target.copy())
        u = np.asarray(out, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return np.full(m, np.nan)
    return u if u.shape == (m,) else np.full(m, np.nan)


def simulate_python(law: Any, model: Any, x: np.ndarray, sc: Scenario, metrics: np.ndarray,
                    record: Callable[[np.ndarray, np.ndarray], None] | None = None) -> None:
    """One evaluation in Python from `x` (changed in place): the same loop as `_evaluate`,
    `record(state, inputs)` called after every period if given."""
    f = sc.facts
    m = f.n_inputs
    u_prev, nxt = np.zeros(m), np.empty_like(x)
    acc = np.zeros(4)
    gate = k = 0
    reset = getattr(law, "reset", None)
    if reset is not None:
        reset()
    target = f.states[S_TARGET] if takes_target(law) else None
    while k < sc.steps:
        u = law_inputs(law, x, k * sc.dt_s, m, target)
        gate = control_gate(u, f.inputs)
        if gate:
            break
        if k > 0:
            acc[3] += chatter(u, u_prev)
        _advance_python(model, x, nxt, u, u_prev, sc.delay, sc.dt_s)
        u_prev = u.copy()
        k += 1
        if record is not None:
            record(x, u)
        gate = state_gate(x, f.states, f.x_index, f.angle_limit_rad, f.track_limit_m)
        if gate:
            break
        accumulate(x, u, f.states, f.inputs, sc.dt_s, acc)
    metrics[:] = (acc[0], acc[1], acc[2], acc[3], 1.0 if gate else 0.0, k, gate)


def _python_batch(make_law: Callable[[Sequence[float]], Any], gains: np.ndarray,
                  scenario: Scenario, out: np.ndarray) -> None:
    """The same evaluations as `_batch_kernel`, in Python."""
    sc = scenario
    for n in range(gains.shape[0]):
        law = make_law(tuple(float(v) for v in gains[n]))
        for k, draw in enumerate(sc.draws):
            model = plant_model(sc.plant, draw)
            for s in range(sc.starts.shape[0]):
                simulate_python(law, model, sc.starts[s].copy(), sc, out[n, k, s])


def _owned(a: np.ndarray) -> np.ndarray:
    """A writable C-contiguous float64 copy: one array type, so one compiled batch kernel."""
    return np.array(a, dtype=np.float64, order="C")


def compiled(law: Any, scenario: Scenario) -> bool:
    """Whether `law` on the scenario's plant runs in the compiled batch."""
    return law_kernels(law) is not None and step_functions(scenario.plant)[0] != PYTHON


def run_batch(make_law: Callable[[Sequence[float]], Any], gains: np.ndarray,
              scenario: Scenario) -> np.ndarray:
    """Metrics (candidates, draws, starts, METRICS) of every gain row of `gains`.

    `make_law(gains)` builds the law (it raises on gains the law refuses). A candidate whose
    gains the law refuses must be filtered out before: every row here is evaluated.
    """
    gains = np.ascontiguousarray(gains, dtype=np.float64)
    sc = scenario
    out = np.zeros((gains.shape[0], sc.n_draws, sc.starts.shape[0], METRICS))
    if gains.shape[0] == 0:
        return out
    probe = make_law(tuple(float(v) for v in gains[0]))
    kernels = law_kernels(probe)
    kind, step, deriv_v, deriv_s = step_functions(sc.plant)
    if kernels is None or kind == PYTHON:
        _python_batch(make_law, gains, sc, out)
        return out
    laws = [probe, *(make_law(tuple(float(v) for v in row)) for row in gains[1:])]
    arrays = [law.kernel_arrays() for law in laws]  # (mem, g, o, p, scratch) each
    scratch = arrays[0][4]
    shape = np.array([scratch.shape[0], max(scratch.shape[1], sc.facts.n_states)],
                     dtype=np.int64)
    f = sc.facts
    _batch_kernel(kernels[0], kernels[1], kernels[2], np.stack([a[1] for a in arrays]),
                  np.stack([a[2] for a in arrays]), _owned(arrays[0][3]),
                  np.stack([a[0] for a in arrays]), shape, kind, step, deriv_v, deriv_s,
                  _owned(sc.plant_params), _owned(sc.starts), sc.steps, sc.dt_s, sc.substeps,
                  sc.delay, _owned(f.states), _owned(f.inputs), f.x_index, f.angle_limit_rad,
                  f.track_limit_m, out)
    return out


def trajectory(make_law: Callable[[Sequence[float]], Any], gains: Sequence[float],
               scenario: Scenario, draw: int, start: int = 0
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(t_s, states (k + 1, n), inputs (k, m)) of one evaluation, for plots; it stops where
    the evaluation does (the Python path, which gives the compiled path's figures)."""
    sc = scenario
    x = sc.starts[start].copy()
    states, inputs = [x.copy()], []

    def record(state: np.ndarray, u: np.ndarray) -> None:
        states.append(state.copy())
        inputs.append(u.copy())

    simulate_python(make_law(gains), plant_model(sc.plant, sc.draws[draw]), x, sc,
                    np.zeros(METRICS), record)
    return (np.arange(len(states)) * sc.dt_s, np.array(states),
            np.array(inputs).reshape(len(inputs), sc.facts.n_inputs))
