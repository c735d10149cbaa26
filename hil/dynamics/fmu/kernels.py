"""The hot path: an FMU's C functions called from numba-compiled code, no Python per call.

`ccall(address, (args...))` calls the C function at `address` (an FMI function of the loaded
binary, found once) with the argument tuple's types (uint64 for pointers and size_t, int32
for fmi2Boolean, float64 for fmi2Real) and returns its fmi2Status. The kernels below take the
addresses in one uint64 array (indexed by the constants here), the instance, and arrays made
once by the model; they allocate nothing.

Each returns 0 (every call OK or a warning) or `call * 8 + status` for the first call that
failed (`CALLS[call]` names it), having written the FMU's time of that call to `info[0]`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

SET_REAL, GET_REAL, SET_TIME, SET_STATES, GET_DERIVATIVES, COMPLETED_STEP, DO_STEP = range(7)
CALLS = ("fmi2SetReal", "fmi2GetReal", "fmi2SetTime", "fmi2SetContinuousStates",
         "fmi2GetDerivatives", "fmi2CompletedIntegratorStep", "fmi2DoStep")
# Beyond the FMI statuses: a model exchange FMU asked for an event, or to terminate.
EVENT_ASKED, TERMINATE_ASKED = 6, 7
WORST_ACCEPTED = 1  # fmi2Warning: the step went on


def needed_calls(kind: str) -> tuple[str, ...]:
    """The FMI functions the kernels call for an FMU of `kind` (the others stay 0)."""
    return CALLS[:2] + (CALLS[2:6] if kind == "model_exchange" else CALLS[6:])


def _ccall(typingctx: Any, address: Any, args: Any) -> Any:
    """Call the C function at `address` with the tuple `args`; its int return value."""
    signature = types.int32(address, args)

    def codegen(context: Any, builder: Any, sig: Any, llargs: Any) -> Any:
        arg_types = [context.get_value_type(t) for t in args.types]
        function = ir.FunctionType(ir.IntType(32), arg_types)
        pointer = builder.inttoptr(llargs[0], function.as_pointer())
        values = [builder.extract_value(llargs[1], i) for i in range(len(arg_types))]
        return builder.call(pointer, values)

    return signature, codegen


ccall: Any = intrinsic(_ccall)


@njit(cache=True)
def _failed(call: int, status: int, t: float, info: np.ndarray) -> int:
    info[0] = t
    return call * 8 + status


@njit(cache=True)
def set_inputs(fp: np.ndarray, comp: np.uint64, refs: np.ndarray, u: np.ndarray,
               low: np.ndarray, high: np.ndarray, held: np.ndarray) -> int:
    """Each input of `u` saturated at [low, high] into `held`, then set in the FMU."""
    for i in range(u.shape[0]):
        held[i] = min(max(u[i], low[i]), high[i])
    status: int = ccall(fp[SET_REAL], (comp, refs.ctypes.data, np.uint64(refs.shape[0]),
                                       held.ctypes.data))
    return status


@njit(cache=True)
def derivatives_at(fp: np.ndarray, comp: np.uint64, t: float, x: np.ndarray,
                   dx: np.ndarray, info: np.ndarray) -> int:
    """The derivatives `dx` at time `t` and states `x` (the inputs as last set)."""
    n = np.uint64(x.shape[0])
    status: int = ccall(fp[SET_TIME], (comp, t))
    if status > WORST_ACCEPTED:
        return _failed(SET_TIME, status, t, info)
    status = ccall(fp[SET_STATES], (comp, x.ctypes.data, n))
    if status > WORST_ACCEPTED:
        return _failed(SET_STATES, status, t, info)
    status = ccall(fp[GET_DERIVATIVES], (comp, dx.ctypes.data, n))
    if status > WORST_ACCEPTED:
        return _failed(GET_DERIVATIVES, status, t, info)
    return 0


@njit(cache=True)
def me_step(fp: np.ndarray, comp: np.uint64, refs: np.ndarray, u: np.ndarray,
            low: np.ndarray, high: np.ndarray, held: np.ndarray, t0: float, dt: float,
            substeps: int, state: np.ndarray, out: np.ndarray, work: np.ndarray,
            completed: bool, info: np.ndarray) -> int:
    """Model exchange: classic RK4 over the FMU's derivatives, `substeps` steps over `dt`,
    the inputs saturated and held; `out` may be `state`. `work` is (5, n)."""
    status = set_inputs(fp, comp, refs, u, low, high, held)
    if status > WORST_ACCEPTED:
        return _failed(SET_REAL, status, t0, info)
    n = state.shape[0]
    k1, k2, k3, k4, tmp = work[0], work[1], work[2], work[3], work[4]
    for i in range(n):
        tmp[i] = state[i]
    for i in range(n):
        out[i] = tmp[i]
    h = dt / substeps
    for s in range(substeps):
        t = t0 + s * h
        code = derivatives_at(fp, comp, t, out, k1, info)
        if code == 0:
            for i in range(n):
                tmp[i] = out[i] + 0.5 * h * k1[i]
            code = derivatives_at(fp, comp, t + 0.5 * h, tmp, k2, info)
        if code == 0:
            for i in range(n):
                tmp[i] = out[i] + 0.5 * h * k2[i]
            code = derivatives_at(fp, comp, t + 0.5 * h, tmp, k3, info)
        if code == 0:
            for i in range(n):
                tmp[i] = out[i] + h * k3[i]
            code = derivatives_at(fp, comp, t + h, tmp, k4, info)
        if code != 0:
            return code
        for i in range(n):
            out[i] += h / 6.0 * (k1[i] + 2.0 * (k2[i] + k3[i]) + k4[i])
    return _complete(fp, comp, t0 + dt, out, completed, info)


@njit(cache=True)
def _complete(fp: np.ndarray, comp: np.uint64, t: float, x: np.ndarray, completed: bool,
              info: np.ndarray) -> int:
    """Leave the FMU at (t, x) and, if it needs it, tell it the step is complete."""
    status = ccall(fp[SET_TIME], (comp, t))
    if status > WORST_ACCEPTED:
        return _failed(SET_TIME, status, t, info)
    status = ccall(fp[SET_STATES], (comp, x.ctypes.data, np.uint64(x.shape[0])))
    if status > WORST_ACCEPTED:
        return _failed(SET_STATES, status, t, info)
    if not completed:
        return 0
    flags = info[1:3].view(np.int32)  # fmi2Boolean enterEventMode, terminateSimulation
    status = ccall(fp[COMPLETED_STEP], (comp, np.int32(1), flags.ctypes.data,
                                        flags[1:].ctypes.data))
    if status > WORST_ACCEPTED:
        return _failed(COMPLETED_STEP, status, t, info)
    if flags[0] != 0:
        return _failed(COMPLETED_STEP, EVENT_ASKED, t, info)
    if flags[1] != 0:
        return _failed(COMPLETED_STEP, TERMINATE_ASKED, t, info)
    return 0


@njit(cache=True)
def cs_step(fp: np.ndarray, comp: np.uint64, refs: np.ndarray, u: np.ndarray,
            low: np.ndarray, high: np.ndarray, held: np.ndarray, t0: float, dt: float,
            substeps: int, out_refs: np.ndarray, out: np.ndarray, info: np.ndarray) -> int:
    """Co-simulation: the inputs saturated and set, `substeps` doSteps over `dt`, then the
    outputs `out_refs` read into `out`."""
    status = set_inputs(fp, comp, refs, u, low, high, held)
    if status > WORST_ACCEPTED:
        return _failed(SET_REAL, status, t0, info)
    h = dt / substeps
    for s in range(substeps):
        t = t0 + s * h
        status = ccall(fp[DO_STEP], (comp, t, h, np.int32(1)))
        if status > WORST_ACCEPTED:
            return _failed(DO_STEP, status, t, info)
    status = ccall(fp[GET_REAL], (comp, out_refs.ctypes.data, np.uint64(out_refs.shape[0]),
                                  out.ctypes.data))
    if status > WORST_ACCEPTED:
        return _failed(GET_REAL, status, t0 + dt, info)
    return 0
