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

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import cfunc, njit, prange, types

from controller_client.controllers.base import KernelLaw
from controller_client.controllers.lqr import LQR, lqr_plant_kernel, lqr_plant_track_kernel
from controller_client.law import needs_target, takes_target
from controller_client.tuning.experiment import (
    F_ACTUATOR,
    F_DELAY,
    F_DISTURBANCE,
    F_INPUT_DELAY,
    F_REFERENCE,
    F_SENSE,
    TARGET_NONE,
    TARGET_PYTHON,
    TARGET_SCRATCH,
    TARGET_SHIFT,
    ExperimentSpec,
    delayed,
    metric_columns,
    plant_input,
    see,
    spec_arrays,
    target_at,
)
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
def _lqr_plant_track(state, mem, g, o, p, scratch, u):
    """The LQR on any plant model tracking the target the loop put in scratch row 1
    (lqr.lqr_plant_track_kernel, as LQR.compute with a target)."""
    lqr_plant_track_kernel(state, scratch[1], mem, o, u, scratch[0])


@njit(nogil=True, cache=True)
def _no_scalar_law(state, mem, g, o, p, scratch):
    return 0.0


@njit(nogil=True, cache=True)
def _no_vector_law(state, mem, g, o, p, scratch, u):
    u[:] = 0.0


def has_kernel(law: Any) -> bool:
    """True when `law` has a numba kernel and its arrays (a KernelLaw)."""
    return callable(getattr(type(law), "kernel", None)) and hasattr(law, "kernel_arrays")


def law_target(law: Any, experiment: ExperimentSpec | None, n: int) -> tuple[int, np.ndarray]:
    """(how the law gets the run's target, the mask of a TARGET_SHIFT law): as the
    controller decides (controller_client.main.experiment_parts: a law that takes a target
    gets it when the experiment has references, one that needs it always). The compiled
    forms: the LQR on a plant model tracks it in its scratch row (TARGET_SCRATCH); the DIP's
    LQR sees x - target and a KernelLaw with the base compute x - x_target and x_dot -
    x_dot_target (TARGET_SHIFT, the same arithmetic); any other law gets it in Python."""
    referenced = experiment is not None and experiment.referenced
    mask = np.zeros(n)
    if not (takes_target(law) if referenced else needs_target(law)):
        return TARGET_NONE, mask
    if isinstance(law, LQR) and getattr(law, "x_eq", None) is not None:
        return TARGET_SCRATCH, mask
    if isinstance(law, LQR):
        return TARGET_SHIFT, np.ones(n)
    if has_kernel(law) and type(law).compute is KernelLaw.compute and n == 6:
        mask[[0, 3]] = 1.0
        return TARGET_SHIFT, mask
    return TARGET_PYTHON, mask


def law_kernels(law: Any, mode: int = TARGET_NONE) -> tuple[int, Any, Any] | None:
    """(LAW_SCALAR or LAW_VECTOR, scalar kernel, vector kernel) of a law that can run in the
    compiled batch (the unused one a stand-in), or None: a law simulated in Python. The LQR
    designed on a plant model runs its plant kernel (its tracking form for TARGET_SCRATCH);
    the other built-in laws their kernel (they refuse plants it does not fit when they are
    built). A law that gets the target only in Python (`mode` TARGET_PYTHON) has none."""
    if mode == TARGET_PYTHON:
        return None
    if isinstance(law, LQR) and getattr(law, "x_eq", None) is not None:
        vector = _lqr_plant_track if mode == TARGET_SCRATCH else _lqr_plant
        return (LAW_VECTOR, function_of(_no_scalar_law, KERNEL_SIGNATURE),
                function_of(vector, VECTOR_KERNEL_SIGNATURE))
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
    experiment: ExperimentSpec | None = None  # the lab's experiment (experiment.py)
    noise: np.ndarray | None = None  # (K, steps or 0, n): each draw's sensor noise

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

    @property
    def period_ns(self) -> int:
        return round(self.dt_s * 1e9)

    @property
    def n_metrics(self) -> int:
        """The experiment's metric columns after the METRICS figures."""
        return 0 if self.experiment is None else len(self.experiment.names)

    def sensor_noise(self) -> np.ndarray:
        if self.noise is not None:
            return self.noise
        return np.zeros((self.n_draws, 0, self.facts.n_states))

    def times_s(self) -> np.ndarray:
        """The samples' run times, as the plant records them (k periods, in ns)."""
        return (np.arange(self.steps + 1) * self.period_ns) * 1e-9


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
def _piece(kind, step, deriv_v, deriv_s, x, u, dt_s, t_s, substeps, p, inputs, out, work,
           held, xp, xw):
    """`u` held over `dt_s` from run time `t_s`: through the experiment's actuators and
    disturbances when it has them (experiment.plant_input; xw rows: the actuators' output,
    the model's input, the disturbances)."""
    flags = xp[4]
    if flags[F_ACTUATOR] != 0 or flags[F_DISTURBANCE] != 0:
        plant_input(u, xw[1], t_s, dt_s, flags, xp[1], xp[3], xw[0], xw[2])
        _plant_step(kind, step, deriv_v, deriv_s, x, xw[1], dt_s, substeps, p, inputs, out,
                    work, held)
    else:
        _plant_step(kind, step, deriv_v, deriv_s, x, u, dt_s, substeps, p, inputs, out, work,
                    held)


@njit(nogil=True, cache=True)
def _advance(kind, step, deriv_v, deriv_s, x, nxt, u, u_prev, delay, dt_s, t_s, substeps, p,
             inputs, work, held, xp, xw):
    """One plant period from run time `t_s`: `u_prev` for the first `delay` of it, then `u`
    (zero-order hold)."""
    if delay > 0.0:
        _piece(kind, step, deriv_v, deriv_s, x, u_prev, delay * dt_s, t_s, substeps, p,
               inputs, nxt, work, held, xp, xw)
        if delay < 1.0:
            _piece(kind, step, deriv_v, deriv_s, nxt, u, (1.0 - delay) * dt_s,
                   t_s + delay * dt_s, substeps, p, inputs, x, work, held, xp, xw)
        else:
            x[:] = nxt
    else:
        _piece(kind, step, deriv_v, deriv_s, x, u, dt_s, t_s, substeps, p, inputs, nxt, work,
               held, xp, xw)
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
def record_row(traj, k, x, u, recorded):
    """Row k of a trajectory for the metrics: the recorded states, then the inputs."""
    r = recorded.shape[0]
    for j in range(r):
        traj[k, j] = x[recorded[j]]
    for j in range(u.shape[0]):
        traj[k, r + j] = u[j]


@njit(nogil=True, cache=True)
def _evaluate(law_kind, law_s, law_v, g, o, law_p, mem, scratch, kind, step, deriv_v, deriv_s,
              p, x, steps, dt_s, substeps, delay, states, inputs, x_index, angle_limit,
              track_limit, metrics, xp, noise, mode, mask, period_ns, traj):
    """Run one evaluation from `x` (changed in place); its figures into `metrics`, its
    trajectory into `traj` when it has rows (experiment.py: the law sees the sensors' output
    and the target, the model gets the actuators' output and the disturbances)."""
    n, m = x.shape[0], inputs.shape[1]
    u, u_prev, held = np.zeros(m), np.zeros(m), np.zeros(m)
    nxt, work, xw = np.empty(n), np.zeros((5, n)), np.zeros((3, m))
    seen, figures, flags = np.empty(n), states.copy(), xp[4]
    target, coeffs = states[S_TARGET].copy(), xp[2].copy()
    ring = np.zeros((flags[F_DELAY] + 1, n))
    line, act, act_prev = np.zeros((flags[F_INPUT_DELAY] + 1, m)), np.zeros(m), np.zeros(m)
    acc = np.zeros(4)
    record = traj.shape[0] > 0
    if record:
        record_row(traj, 0, x, u_prev, xp[5])
    target_at(0, period_ns, flags, xp[0], target)
    gate = 0
    k = 0
    sees_all = flags[F_SENSE] == 0 and mode != TARGET_SHIFT  # the law sees x itself
    view = x if sees_all else seen
    while k < steps:
        if not sees_all:
            see(x, seen, target, k, flags, coeffs, noise, ring, mode, mask)
        if mode == TARGET_SCRATCH:
            scratch[1, :n] = target
        if law_kind == LAW_SCALAR:
            u[0] = law_s(view, mem, g, o, law_p, scratch)
        else:
            law_v(view, mem, g, o, law_p, scratch, u)
        gate = control_gate(u, inputs)
        if gate != 0:
            break
        if k > 0:
            acc[3] += chatter(u, u_prev)
        if line.shape[0] > 1:
            delayed(line, k, u, act, act_prev)
            _advance(kind, step, deriv_v, deriv_s, x, nxt, act, act_prev, delay, dt_s,
                     float(k * period_ns) * 1e-9, substeps, p, inputs, work, held, xp, xw)
        else:
            _advance(kind, step, deriv_v, deriv_s, x, nxt, u, u_prev, delay, dt_s,
                     float(k * period_ns) * 1e-9, substeps, p, inputs, work, held, xp, xw)
        u_prev[:] = u
        k += 1
        gate = state_gate(x, states, x_index, angle_limit, track_limit)
        if gate != 0:
            break
        if flags[F_REFERENCE] != 0:
            target_at(k, period_ns, flags, xp[0], target)
            figures[S_TARGET, :] = target
        accumulate(x, u, figures, inputs, dt_s, acc)
        if record:
            record_row(traj, k, x, u, xp[5])
    metrics[M_ANGLE], metrics[M_POSITION] = acc[0], acc[1]
    metrics[M_EFFORT], metrics[M_CHATTER] = acc[2], acc[3]
    metrics[M_FALLEN] = 1.0 if gate != 0 else 0.0
    metrics[M_STEPS] = k
    metrics[M_GATE] = gate


@njit(nogil=True, parallel=True, cache=True)
def _batch_kernel(law_kind, law_s, law_v, gains, opts, law_p, mem0, scratch_shape, kind, step,
                  deriv_v, deriv_s, plant_p, starts, steps, dt_s, substeps, delay, states,
                  inputs, x_index, angle_limit, track_limit, out, xp, noise, mode, mask,
                  period_ns, traj):
    """out[n, k, s, :] = the metrics of candidate n on plant k from start s (its trajectory
    in traj[n, k, s] when traj has rows; noise[k]: draw k's sensor noise).

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
                  angle_limit, track_limit, out[n, k, s], xp, noise[k], mode, mask,
                  period_ns, traj[n, k, s])


# --- the Python path ---------------------------------------------------------------------------


def _piece_python(model: Any, x: np.ndarray, u: np.ndarray, dt_s: float, t_s: float,
                  out: np.ndarray, xp: tuple[np.ndarray, ...], xw: np.ndarray) -> None:
    """`_piece` through the runtime's own `model.step` (a plant without a kernel)."""
    flags = xp[4]
    if flags[F_ACTUATOR] or flags[F_DISTURBANCE]:
        plant_input(u, xw[1], t_s, dt_s, flags, xp[1], xp[3], xw[0], xw[2])
        u = xw[1]
    model.step(x, u, dt_s, out)


def law_inputs(law: Any, x: np.ndarray, t_s: float, m: int, target: np.ndarray | None
               ) -> np.ndarray:
    """The law's inputs for `x` as m floats (NaN where it returned something else); the
    run's target to a law that gets it (`law_target`)."""
    try:
        if target is None:
            out = law.compute(x.copy(), t_s)
        else:
            out = law.compute(x.copy(), t_s, target.copy())
        u = np.asarray(out, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        return np.full(m, np.nan)
    return u if u.shape == (m,) else np.full(m, np.nan)


class _PythonRun:
    """One evaluation's loop in Python: `_evaluate`'s steps through the law's `compute` and
    the runtime's `model.step`, with the same compiled parts of the experiment."""

    def __init__(self, law: Any, model: Any, sc: Scenario, draw: int) -> None:
        f = sc.facts
        n, m = f.n_states, f.n_inputs
        self.law, self.model, self.sc, self.facts = law, model, sc, f
        mode = law_target(law, sc.experiment, n)[0]
        self.gets_target = mode != TARGET_NONE
        self.xp = spec_arrays(sc.experiment, n, m)
        self.flags = self.xp[4]
        self.noise = sc.sensor_noise()[draw]
        self.seen, self.figures = np.empty(n), f.states.copy()
        self.target, self.coeffs = f.states[S_TARGET].copy(), self.xp[2].copy()
        self.ring = np.zeros((int(self.flags[F_DELAY]) + 1, n))
        self.xw, self.mask = np.zeros((3, m)), np.zeros(n)
        self.line = np.zeros((int(self.flags[F_INPUT_DELAY]) + 1, m))
        self.act, self.act_prev = np.zeros(m), np.zeros(m)
        target_at(0, sc.period_ns, self.flags, self.xp[0], self.target)

    def inputs(self, x: np.ndarray, k: int) -> np.ndarray:
        """The law's inputs at control k, from what it sees of `x`."""
        see(x, self.seen, self.target, k, self.flags, self.coeffs, self.noise, self.ring,
            TARGET_NONE, self.mask)
        return law_inputs(self.law, self.seen, k * self.sc.period_ns * 1e-9,
                          self.facts.n_inputs, self.target if self.gets_target else None)

    def advance(self, x: np.ndarray, nxt: np.ndarray, u: np.ndarray, u_prev: np.ndarray,
                k: int) -> None:
        """One plant period from control k's time: `u_prev` for the link's delay, then `u`."""
        sc, xp, xw = self.sc, self.xp, self.xw
        t_s, delay, dt_s = k * sc.period_ns * 1e-9, sc.delay, sc.dt_s
        if self.line.shape[0] > 1:  # the actuators' input delay
            delayed(self.line, k, u, self.act, self.act_prev)
            u, u_prev = self.act, self.act_prev
        if delay > 0.0:
            _piece_python(self.model, x, u_prev, delay * dt_s, t_s, nxt, xp, xw)
            if delay < 1.0:
                _piece_python(self.model, nxt, u, (1.0 - delay) * dt_s, t_s + delay * dt_s,
                              x, xp, xw)
            else:
                x[:] = nxt
        else:
            _piece_python(self.model, x, u, dt_s, t_s, nxt, xp, xw)
            x[:] = nxt

    def figures_at(self, k: int) -> np.ndarray:
        """The plant's facts with the target at k in the row the figures measure from."""
        if self.flags[F_REFERENCE]:
            target_at(k, self.sc.period_ns, self.flags, self.xp[0], self.target)
            self.figures[S_TARGET] = self.target
        return self.figures


def simulate_python(law: Any, model: Any, x: np.ndarray, sc: Scenario, metrics: np.ndarray,
                    record: Callable[[np.ndarray, np.ndarray], None] | None = None,
                    draw: int = 0, traj: np.ndarray | None = None) -> None:
    """One evaluation in Python from `x` (changed in place): the same loop as `_evaluate`,
    `record(state, inputs)` called after every period if given, the metrics' trajectory
    into `traj` when it has rows; `draw`: the draw's sensor noise."""
    f = sc.facts
    run = _PythonRun(law, model, sc, draw)
    u_prev, nxt = np.zeros(f.n_inputs), np.empty_like(x)
    keep = traj is not None and traj.shape[0] > 0
    if keep:
        record_row(traj, 0, x, u_prev, run.xp[5])
    acc = np.zeros(4)
    gate = k = 0
    reset = getattr(law, "reset", None)
    if reset is not None:
        reset()
    while k < sc.steps:
        u = run.inputs(x, k)
        gate = control_gate(u, f.inputs)
        if gate:
            break
        if k > 0:
            acc[3] += chatter(u, u_prev)
        run.advance(x, nxt, u, u_prev, k)
        u_prev = u.copy()
        k += 1
        if record is not None:
            record(x, u)
        gate = state_gate(x, f.states, f.x_index, f.angle_limit_rad, f.track_limit_m)
        if gate:
            break
        accumulate(x, u, run.figures_at(k), f.inputs, sc.dt_s, acc)
        if keep:
            record_row(traj, k, x, u, run.xp[5])
    metrics[:] = (acc[0], acc[1], acc[2], acc[3], 1.0 if gate else 0.0, k, gate)


def _python_batch(make_law: Callable[[Sequence[float]], Any], gains: np.ndarray,
                  scenario: Scenario, out: np.ndarray, traj: np.ndarray) -> None:
    """The same evaluations as `_batch_kernel`, in Python."""
    sc = scenario
    for n in range(gains.shape[0]):
        law = make_law(tuple(float(v) for v in gains[n]))
        for k, draw in enumerate(sc.draws):
            model = plant_model(sc.plant, draw)
            for s in range(sc.starts.shape[0]):
                simulate_python(law, model, sc.starts[s].copy(), sc, out[n, k, s], draw=k,
                                traj=traj[n, k, s])


def _owned(a: np.ndarray) -> np.ndarray:
    """A writable C-contiguous float64 copy: one array type, so one compiled batch kernel."""
    return np.array(a, dtype=np.float64, order="C")


def compiled(law: Any, scenario: Scenario) -> bool:
    """Whether `law` on the scenario's plant runs in the compiled batch."""
    mode = law_target(law, scenario.experiment, scenario.facts.n_states)[0]
    return law_kernels(law, mode) is not None and step_functions(scenario.plant)[0] != PYTHON


def _trajectories(scenario: Scenario, rows: int) -> np.ndarray:
    """Where the evaluations' trajectories go for the experiment's metrics: (rows, draws,
    starts, steps + 1, recorded states + inputs); no samples without an experiment."""
    sc = scenario
    xp = sc.experiment
    samples = 0 if xp is None else sc.steps + 1
    columns = sc.facts.n_inputs + (0 if xp is None else len(xp.recorded))
    return np.zeros((rows, sc.n_draws, sc.starts.shape[0], samples, columns))


def run_batch(make_law: Callable[[Sequence[float]], Any], gains: np.ndarray,
              scenario: Scenario) -> np.ndarray:
    """Metrics (candidates, draws, starts, METRICS + the experiment's metrics) of every gain
    row of `gains`: the figures, then (with an experiment) its metrics in the order of
    `experiment.names`, NaN on an evaluation that tripped a gate.

    `make_law(gains)` builds the law (it raises on gains the law refuses). A candidate whose
    gains the law refuses must be filtered out before: every row here is evaluated.
    """
    gains = np.ascontiguousarray(gains, dtype=np.float64)
    sc = scenario
    out = np.zeros((gains.shape[0], sc.n_draws, sc.starts.shape[0], METRICS))
    traj = _trajectories(sc, gains.shape[0])
    if gains.shape[0] > 0:
        _run(make_law, gains, sc, out, traj)
    if sc.experiment is None:
        return out
    extra = np.zeros((*out.shape[:3], sc.n_metrics))
    metric_columns(sc.experiment, sc.times_s(), traj, out[..., M_FALLEN] == 0, extra)
    return np.concatenate([out, extra], axis=-1)


def _run(make_law: Callable[[Sequence[float]], Any], gains: np.ndarray, sc: Scenario,
         out: np.ndarray, traj: np.ndarray) -> None:
    probe = make_law(tuple(float(v) for v in gains[0]))
    f = sc.facts
    mode, mask = law_target(probe, sc.experiment, f.n_states)
    kernels = law_kernels(probe, mode)
    kind, step, deriv_v, deriv_s = step_functions(sc.plant)
    if kernels is None or kind == PYTHON:
        _python_batch(make_law, gains, sc, out, traj)
        return
    laws = [probe, *(make_law(tuple(float(v) for v in row)) for row in gains[1:])]
    arrays = [law.kernel_arrays() for law in laws]  # (mem, g, o, p, scratch) each
    scratch = arrays[0][4]
    shape = np.array([max(scratch.shape[0], 2), max(scratch.shape[1], f.n_states)],
                     dtype=np.int64)
    xp = tuple(_owned(a) if a.dtype == np.float64 else a
               for a in spec_arrays(sc.experiment, f.n_states, f.n_inputs))
    _batch_kernel(kernels[0], kernels[1], kernels[2], np.stack([a[1] for a in arrays]),
                  np.stack([a[2] for a in arrays]), _owned(arrays[0][3]),
                  np.stack([a[0] for a in arrays]), shape, kind, step, deriv_v, deriv_s,
                  _owned(sc.plant_params), _owned(sc.starts), sc.steps, sc.dt_s, sc.substeps,
                  sc.delay, _owned(f.states), _owned(f.inputs), f.x_index, f.angle_limit_rad,
                  f.track_limit_m, out, xp, _owned(sc.sensor_noise()), mode, _owned(mask),
                  sc.period_ns, traj)


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
                    np.zeros(METRICS), record, draw)
    return (np.arange(len(states)) * sc.dt_s, np.array(states),
            np.array(inputs).reshape(len(inputs), sc.facts.n_inputs))
