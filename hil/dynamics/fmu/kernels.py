"""The hot path: an FMU's C functions called from numba-compiled code, no Python per call.

`ccall(address, (args...))` calls the C function at `address` (an FMI function of the loaded
binary, found once) with the argument tuple's types (uint64 for pointers and size_t, int32
for fmi2Boolean, uint8 for FMI 3's bool, float64 for fmi2Real/fmi3Float64) and returns its
status. An FMI 3.0 FMU (`v3`): its functions take the value count, its booleans are bytes,
its doStep reports more.

The entry points (`me_step`, `cs_step`, `me_derivatives`) take few arguments, each packed
once by the model (numba's dispatch costs per argument): `fp` (uint64: the addresses indexed
by the call constants, then the instance, substeps, completed, v3: see `pack_setup`), `refs`
(the inputs' value references), `u`, `lims` (rows low, high, held), and `work` (rows k1, k2,
k3, k4, tmp of the RK4, then `info`: the failing call's time, 8 bytes of flags, doStep's last
time, and the FMU's time now). They allocate nothing. Each returns 0 (every call OK or a
warning) or `call * 8 + status` for the first call that failed (`calls(version)[call]` names
it), having written the FMU's time of that call to `info[0]`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

SET_REAL, GET_REAL, SET_TIME, SET_STATES, GET_DERIVATIVES, COMPLETED_STEP, DO_STEP = range(7)
CALLS = {2: ("fmi2SetReal", "fmi2GetReal", "fmi2SetTime", "fmi2SetContinuousStates",
             "fmi2GetDerivatives", "fmi2CompletedIntegratorStep", "fmi2DoStep"),
         3: ("fmi3SetFloat64", "fmi3GetFloat64", "fmi3SetTime", "fmi3SetContinuousStates",
             "fmi3GetContinuousStateDerivatives", "fmi3CompletedIntegratorStep", "fmi3DoStep")}
# Beyond the FMI statuses: the FMU asked for an event, or to terminate.
EVENT_ASKED, TERMINATE_ASKED = 6, 7
WORST_ACCEPTED = 1  # fmi2Warning / fmi3Warning: the step went on


COMPONENT, SUBSTEPS, COMPLETED, V3 = 7, 8, 9, 10  # fp beyond the addresses
INFO, FAILED_AT, FLAGS, LAST_TIME, NOW = 5, 0, 1, 2, 3  # work[INFO] and its entries


def pack_setup(addresses: list[int], component: int, substeps: int, completed: bool,
               v3: bool) -> np.ndarray:
    """`fp`: the function addresses (in `calls` order, 0 for those not called), then the
    instance and the step's settings."""
    return np.array([*addresses, component, substeps, int(completed), int(v3)],
                    dtype=np.uint64)


def new_work(n_states: int) -> np.ndarray:
    """`work` for a plant of `n_states`: the RK4's rows and `info`, time 0."""
    return np.zeros((INFO + 1, max(n_states, NOW + 1)))


def calls(version: int) -> tuple[str, ...]:
    """The names of the FMI functions the kernels call, in their index order."""
    return CALLS[version]


def needed_calls(kind: str, version: int) -> tuple[str, ...]:
    """The FMI functions the kernels call for an FMU of `kind` (the others stay 0)."""
    names = CALLS[version]
    return names[:2] + (names[2:6] if kind == "model_exchange" else names[6:])


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
def _real_values(fp: np.ndarray, call: int, comp: np.uint64, refs: np.ndarray,
                 values: np.ndarray, v3: bool) -> int:
    """fmi2SetReal / fmi2GetReal (`call`), or FMI 3's Float64 twins with the value count."""
    n = np.uint64(refs.shape[0])
    if v3:
        status: int = ccall(fp[call], (comp, refs.ctypes.data, n, values.ctypes.data, n))
        return status
    status = ccall(fp[call], (comp, refs.ctypes.data, n, values.ctypes.data))
    return status


@njit(cache=True)
def set_inputs(fp: np.ndarray, comp: np.uint64, refs: np.ndarray, u: np.ndarray,
               low: np.ndarray, high: np.ndarray, held: np.ndarray, v3: bool) -> int:
    """Each input of `u` saturated at [low, high] into `held`, then set in the FMU."""
    for i in range(u.shape[0]):
        held[i] = min(max(u[i], low[i]), high[i])
    return _real_values(fp, SET_REAL, comp, refs, held, v3)


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
def _me_step(fp: np.ndarray, comp: np.uint64, refs: np.ndarray, u: np.ndarray,
            low: np.ndarray, high: np.ndarray, held: np.ndarray, t0: float, dt: float,
            substeps: int, state: np.ndarray, out: np.ndarray, work: np.ndarray,
            completed: bool, info: np.ndarray, v3: bool) -> int:
    """Model exchange: classic RK4 over the FMU's derivatives, `substeps` steps over `dt`,
    the inputs saturated and held; `out` may be `state`. `work` is (5, n)."""
    status = set_inputs(fp, comp, refs, u, low, high, held, v3)
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
    return _complete(fp, comp, t0 + dt, out, completed, info, v3)


@njit(cache=True)
def _complete(fp: np.ndarray, comp: np.uint64, t: float, x: np.ndarray, completed: bool,
              info: np.ndarray, v3: bool) -> int:
    """Leave the FMU at (t, x) and, if it needs it, tell it the step is complete."""
    status = ccall(fp[SET_TIME], (comp, t))
    if status > WORST_ACCEPTED:
        return _failed(SET_TIME, status, t, info)
    status = ccall(fp[SET_STATES], (comp, x.ctypes.data, np.uint64(x.shape[0])))
    if status > WORST_ACCEPTED:
        return _failed(SET_STATES, status, t, info)
    if not completed:
        return 0
    # enterEventMode, terminateSimulation: fmi2Boolean (int), or FMI 3's bool (a byte)
    if v3:
        flags3 = info[1:2].view(np.uint8)
        flags3[0] = flags3[1] = 0
        status = ccall(fp[COMPLETED_STEP], (comp, np.uint8(1), flags3.ctypes.data,
                                            flags3[1:].ctypes.data))
        event, terminate = flags3[0] != 0, flags3[1] != 0
    else:
        flags2 = info[1:2].view(np.int32)
        flags2[0] = flags2[1] = 0
        status = ccall(fp[COMPLETED_STEP], (comp, np.int32(1), flags2.ctypes.data,
                                            flags2[1:].ctypes.data))
        event, terminate = flags2[0] != 0, flags2[1] != 0
    return _asked(COMPLETED_STEP, status, event, terminate, t, info)


@njit(cache=True)
def _asked(call: int, status: int, event: bool, terminate: bool, t: float,
           info: np.ndarray) -> int:
    """The call's failure, else an event or termination it asked for, else 0."""
    if status > WORST_ACCEPTED:
        return _failed(call, status, t, info)
    if event:
        return _failed(call, EVENT_ASKED, t, info)
    if terminate:
        return _failed(call, TERMINATE_ASKED, t, info)
    return 0


@njit(cache=True)
def _cs_step(fp: np.ndarray, comp: np.uint64, refs: np.ndarray, u: np.ndarray,
            low: np.ndarray, high: np.ndarray, held: np.ndarray, t0: float, dt: float,
            substeps: int, out_refs: np.ndarray, out: np.ndarray, info: np.ndarray,
            v3: bool) -> int:
    """Co-simulation: the inputs saturated and set, `substeps` doSteps over `dt`, then the
    outputs `out_refs` read into `out`."""
    status = set_inputs(fp, comp, refs, u, low, high, held, v3)
    if status > WORST_ACCEPTED:
        return _failed(SET_REAL, status, t0, info)
    h = dt / substeps
    for s in range(substeps):
        code = _do_step(fp, comp, t0 + s * h, h, info, v3)
        if code != 0:
            return code
    status = _real_values(fp, GET_REAL, comp, out_refs, out, v3)
    if status > WORST_ACCEPTED:
        return _failed(GET_REAL, status, t0 + dt, info)
    return 0


@njit(cache=True)
def _do_step(fp: np.ndarray, comp: np.uint64, t: float, h: float, info: np.ndarray,
             v3: bool) -> int:
    """One doStep from `t` over `h`; FMI 3's also reports an event, a termination or an
    early return (refused: the runtime steps whole periods)."""
    if not v3:
        status: int = ccall(fp[DO_STEP], (comp, t, h, np.int32(1)))
        return _failed(DO_STEP, status, t, info) if status > WORST_ACCEPTED else 0
    flags = info[1:2].view(np.uint8)  # eventHandlingNeeded, terminateSimulation, earlyReturn
    flags[0] = flags[1] = flags[2] = 0
    status = ccall(fp[DO_STEP], (comp, t, h, np.uint8(1), flags.ctypes.data,
                                 flags[1:].ctypes.data, flags[2:].ctypes.data,
                                 info[2:].ctypes.data))
    return _asked(DO_STEP, status, flags[0] != 0 or flags[2] != 0, flags[1] != 0, t, info)



@njit(cache=True)
def me_step(fp: np.ndarray, refs: np.ndarray, u: np.ndarray, lims: np.ndarray, dt: float,
            state: np.ndarray, out: np.ndarray, work: np.ndarray) -> int:
    """Model exchange: classic RK4 over the FMU's derivatives, `substeps` steps over `dt`
    from the FMU's time now, the inputs saturated and held; `out` may be `state`. The time
    advances on success."""
    info = work[INFO]
    t0 = info[NOW]
    code = _me_step(fp, fp[COMPONENT], refs, u, lims[0], lims[1], lims[2], t0, dt,
                    int(fp[SUBSTEPS]), state, out, work, fp[COMPLETED] != 0, info,
                    fp[V3] != 0)
    if code == 0:
        info[NOW] = t0 + dt
    return code


@njit(cache=True)
def cs_step(fp: np.ndarray, refs: np.ndarray, u: np.ndarray, lims: np.ndarray, dt: float,
            out_refs: np.ndarray, out: np.ndarray, work: np.ndarray) -> int:
    """Co-simulation: the inputs saturated and set, `substeps` doSteps over `dt` from the
    FMU's time now, then the outputs `out_refs` read into `out`. The time advances on
    success."""
    info = work[INFO]
    t0 = info[NOW]
    code = _cs_step(fp, fp[COMPONENT], refs, u, lims[0], lims[1], lims[2], t0, dt,
                    int(fp[SUBSTEPS]), out_refs, out, info, fp[V3] != 0)
    if code == 0:
        info[NOW] = t0 + dt
    return code


@njit(cache=True)
def me_derivatives(fp: np.ndarray, refs: np.ndarray, u: np.ndarray, lims: np.ndarray,
                   x: np.ndarray, dx: np.ndarray, work: np.ndarray) -> int:
    """d state / dt into `dx` at the FMU's time now, at `x` under `u` as given (not
    saturated: the raw dynamics, for linearisation and trim)."""
    held = lims[2]
    for i in range(u.shape[0]):
        held[i] = u[i]
    v3 = fp[V3] != 0
    info = work[INFO]
    status = _real_values(fp, SET_REAL, fp[COMPONENT], refs, held, v3)
    if status > WORST_ACCEPTED:
        return _failed(SET_REAL, status, info[NOW], info)
    return derivatives_at(fp, fp[COMPONENT], info[NOW], x, dx, info)
