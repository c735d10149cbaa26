"""The plant a tuning simulates, whatever it is: how it steps, what its draws vary, what its
safety gates watch and what the cost weighs.

**Kinds.** A built-in model steps with its own compiled RK4 kernel (`STEP`); a lab's own
plant (docs/extending.md) with its `derivatives_kernel` through the runtime's compiled RK4
(`hil.dynamics.generic._rk4_compiled`; `DERIV_VECTOR` when it takes its inputs as an array,
`DERIV_SCALAR` as a float); one with only a Python `derivatives` through the runtime's own
`model.step` (`PYTHON`). Compiled functions enter the compiled loops as cached cfuncs of one
signature per kind (`function_of`), so numba's disk cache matches in every process.

**Draws** (`draw_params`): plant k of stream `stream` comes from
`numpy.random.default_rng([seed, stream])`. The double inverted pendulum keeps its own draw
(masses, lengths with their centres of mass, inertias times U(1 - u, 1 + u), friction times
U(1 - 2u, 1 + 2u)); every other plant draws each of its physical parameters the same way
(those named friction or damping at twice the spread; gravity and input limits are not
drawn; a centre of mass `*_com_m` scales with its `*_length_m`). A lab's plant's parameters
are its numeric `plant.params` and the numeric defaults of its `__init__`. A plant with a
`derivatives_kernel` takes no parameters in its kernel (the contract), so its draws are
recorded but change nothing: tune such a plant with `--draws 1`.

**Gates and cost** (`PlantFacts`): the gates of `plant_server/safety.py`, from the plant's
description: every state finite and within its plausible limit, a state named `x` within
`track_limit_m`, each regulated angle (unit rad) within `angle_limit_rad` of its equilibrium
(modulo a turn where it wraps), each input finite and within `sanity_factor` times its
limit. The cost's angle term is the regulated angles' error, its position term the error of
the other positions and angles (the cart, the rotary arm), its effort the inputs' distance
from the trim.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import cfunc, njit, types

from hil.dynamics import PlantModel, cartpole, create_model, dip, helicopter, rotary
from hil.dynamics.contract import is_rate
from hil.dynamics.dip import DIPParams
from hil.dynamics.generic import ExternalModel

STEP, DERIV_VECTOR, DERIV_SCALAR, PYTHON = range(4)
_VECTOR, _MATRIX = types.Array(types.float64, 1, "C"), types.Array(types.float64, 2, "C")
STEP_SIGNATURE = types.void(_VECTOR, _VECTOR, types.float64, types.int64, _VECTOR, _VECTOR)
DERIV_VECTOR_SIGNATURE = types.void(_VECTOR, _VECTOR, _VECTOR)
DERIV_SCALAR_SIGNATURE = types.void(_VECTOR, types.float64, _VECTOR)
# Rows of PlantFacts.states and PlantFacts.inputs.
S_TARGET, S_WRAPS, S_ANGLE, S_POSITION, S_PLAUSIBLE = range(5)
I_TRIM, I_SANITY, I_LOW, I_HIGH = range(4)
DEFAULT_PLAUSIBLE = 1e6  # as plant_server/safety.py
_NOT_DRAWN = ("gravity", "max_")
_WIDE = ("friction", "damping")
_DIP_MASSES = ("cart_mass_kg", "link1_mass_kg", "link2_mass_kg")
_DIP_LENGTHS = (("link1_length_m", "link1_com_m"), ("link2_length_m", "link2_com_m"))
_DIP_INERTIAS = ("link1_inertia_kgm2", "link2_inertia_kgm2")
_DIP_FRICTIONS = ("cart_friction_nspm", "joint1_friction_nmsprad", "joint2_friction_nmsprad")

# The plant a law is tuned on: (plant.model, plant.params as sorted items, plant.substeps,
# the folders searched first for a lab's plant, the FMU file and its outputs read as the
# state, for plant.model fmu). Plain and hashable: a Dask task carries it.
PlantSpec = tuple[str, tuple[tuple[str, Any], ...], int, tuple[str, ...], str | None,
                  tuple[str, ...] | None]


def plant_spec(model: str, params: Mapping[str, Any], substeps: int,
               search_path: Sequence[str] = (), fmu: str | None = None,
               fmu_outputs: Sequence[str] | None = None) -> PlantSpec:
    return (model, tuple(sorted(params.items())), substeps, tuple(search_path), fmu,
            None if fmu_outputs is None else tuple(fmu_outputs))


@functools.lru_cache(maxsize=64)
def plant_model(spec: PlantSpec, params: tuple[tuple[str, Any], ...] | None = None) -> Any:
    """The model of `spec` (with `params` in place of its own: a draw), built once per
    process."""
    name, own, substeps, search_path, fmu, fmu_outputs = spec
    return create_model(name, dict(own if params is None else params), substeps=substeps,
                        search_path=search_path, fmu=fmu, fmu_outputs=fmu_outputs)


# --- how each kind of plant steps ---------------------------------------------------------


@njit(nogil=True, cache=True)
def _dip_step(state, u, dt_s, substeps, p, out):
    dip.rk4_step_kernel(state, u[0], dt_s, substeps, p, out)


@njit(nogil=True, cache=True)
def _cartpole_step(state, u, dt_s, substeps, p, out):
    cartpole.rk4_step_kernel(state, u[0], dt_s, substeps, p, out)


@njit(nogil=True, cache=True)
def _rotary_step(state, u, dt_s, substeps, p, out):
    rotary.rk4_step_kernel(state, u[0], dt_s, substeps, p, out)


@njit(nogil=True, cache=True)
def _helicopter_step(state, u, dt_s, substeps, p, out):
    helicopter.rk4_step_kernel(state, u, dt_s, substeps, p, out)


# A built-in model's compiled step, its inputs as an array: STEP_SIGNATURE.
BUILT_IN_STEPS: dict[type, Any] = {
    dip.DIPModel: _dip_step, cartpole.CartPoleModel: _cartpole_step,
    rotary.RotaryModel: _rotary_step, helicopter.HelicopterModel: _helicopter_step}


@njit(nogil=True, cache=True)
def _no_step(state, u, dt_s, substeps, p, out):
    out[:] = state


@njit(nogil=True, cache=True)
def _no_deriv_vector(state, u, out):
    out[:] = 0.0


@njit(nogil=True, cache=True)
def _no_deriv_scalar(state, u, out):
    out[:] = 0.0


_functions: dict[tuple[Any, Any], Any] = {}
_functions_lock = threading.Lock()


def function_of(dispatcher: Any, signature: Any) -> Any:
    """`dispatcher` (a numba function) as a cached cfunc of `signature`: a first-class
    function whose type is its signature alone, so the loops that call it compile once per
    machine (batch.kernel_function says why)."""
    with _functions_lock:
        key = (dispatcher, signature)
        compiled = _functions.get(key)
        if compiled is None:
            compiled = cfunc(signature, cache=True)(dispatcher.py_func)
            _functions[key] = compiled
        return compiled


def kind_of(model: Any) -> int:
    """How `model` steps (STEP, DERIV_VECTOR, DERIV_SCALAR or PYTHON)."""
    if type(model) in BUILT_IN_STEPS:
        return STEP
    kernel = getattr(model, "derivatives_kernel", None)
    if isinstance(model, ExternalModel) and hasattr(kernel, "py_func"):
        return DERIV_VECTOR if model.takes_vector else DERIV_SCALAR
    return PYTHON


@functools.lru_cache(maxsize=16)
def step_functions(spec: PlantSpec) -> tuple[int, Any, Any, Any]:
    """(kind, step, vector derivatives, scalar derivatives) of the plant of `spec`: the one
    its kind uses and stand-ins of the same types for the others."""
    model = plant_model(spec)
    kind = kind_of(model)
    step = function_of(BUILT_IN_STEPS.get(type(model), _no_step), STEP_SIGNATURE)
    deriv_v = function_of(_no_deriv_vector, DERIV_VECTOR_SIGNATURE)
    deriv_s = function_of(_no_deriv_scalar, DERIV_SCALAR_SIGNATURE)
    if kind == DERIV_VECTOR:
        deriv_v = function_of(model.derivatives_kernel, DERIV_VECTOR_SIGNATURE)
    elif kind == DERIV_SCALAR:
        deriv_s = function_of(model.derivatives_kernel, DERIV_SCALAR_SIGNATURE)
    return kind, step, deriv_v, deriv_s


# --- gates and cost --------------------------------------------------------------------------


@dataclass(frozen=True)
class PlantFacts:
    """What the gates and the cost read of a plant (module docstring), as plain arrays."""

    states: np.ndarray  # (5, n): rows S_TARGET, S_WRAPS, S_ANGLE, S_POSITION, S_PLAUSIBLE
    inputs: np.ndarray  # (4, m): rows I_TRIM, I_SANITY, I_LOW, I_HIGH
    x_index: int  # the state named x (the track gate), or -1
    angle_limit_rad: float  # inf: off
    track_limit_m: float  # inf: off

    @property
    def n_states(self) -> int:
        return int(self.states.shape[1])

    @property
    def n_inputs(self) -> int:
        return int(self.inputs.shape[1])


def plant_facts(model: Any, angle_limit_rad: float | None, track_limit_m: float | None,
                sanity_factor: float) -> PlantFacts:
    """The facts of `model` (built in or a lab's own) under the config's safety limits."""
    d = model.describe()
    names, units = d["state_names"], d["state_units"]
    n = len(names)
    angles = [u == "rad" and s in d["regulated"] for s, u in zip(names, units, strict=True)]
    positions = [not a and not is_rate(u) for a, u in zip(angles, units, strict=True)]
    plausible = d.get("plausible_limits") or [DEFAULT_PLAUSIBLE] * n
    states = np.array([d["equilibrium"], [s in d["wraps"] for s in names], angles, positions,
                       plausible], dtype=np.float64)
    low = np.array([lo for lo, _ in d["input_limits"]], dtype=np.float64)
    high = np.array([hi for _, hi in d["input_limits"]], dtype=np.float64)
    trim = d["equilibrium_input"]
    trim = np.zeros(len(low)) if trim is None else np.array(trim, dtype=np.float64)
    sanity = sanity_factor * np.maximum(np.abs(low), np.abs(high))
    return PlantFacts(states, np.array([trim, sanity, low, high]),
                      names.index("x") if "x" in names else -1,
                      np.inf if angle_limit_rad is None else float(angle_limit_rad),
                      np.inf if track_limit_m is None else float(track_limit_m))


# --- draws -----------------------------------------------------------------------------------


def nominal_params(spec: PlantSpec) -> dict[str, float]:
    """Every parameter a draw varies, at its nominal value: a built-in model's fields, a
    lab's plant's numeric plant.params and numeric __init__ defaults."""
    model = plant_model(spec)
    if isinstance(model, PlantModel):
        return {k: float(v) for k, v in model.params.to_dict().items()}
    own = {k: v for k, v in dict(spec[1]).items() if _number(v)}
    instance = getattr(model, "instance", None)  # an FMU's parameters: plant.params only
    defaults = {} if instance is None else {
        name: p.default for name, p in inspect.signature(type(instance).__init__).parameters.items()
        if _number(p.default)}
    return {k: float(v) for k, v in {**defaults, **own}.items()}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def draw_params(spec: PlantSpec, seed: int, stream: int, count: int, uncertainty: float
                ) -> tuple[tuple[tuple[str, Any], ...], ...]:
    """`count` draws of stream `stream`: each the full plant.params of one drawn plant."""
    rng = np.random.default_rng([seed, stream])
    nominal = nominal_params(spec)
    draw = _dip_draw if plant_model(spec).__class__ is dip.DIPModel else _generic_draw
    fixed = {k: v for k, v in spec[1] if k not in nominal}
    return tuple(tuple(sorted({**fixed, **draw(nominal, rng, uncertainty)}.items()))
                 for _ in range(count))


def _dip_draw(nominal: dict[str, float], rng: np.random.Generator, u: float
              ) -> dict[str, float]:
    values = dict(nominal)
    for name in _DIP_MASSES + _DIP_INERTIAS:
        values[name] *= rng.uniform(1.0 - u, 1.0 + u)
    for length, com in _DIP_LENGTHS:
        factor = rng.uniform(1.0 - u, 1.0 + u)
        values[length] *= factor
        values[com] *= factor
    for name in _DIP_FRICTIONS:
        values[name] *= max(0.0, rng.uniform(1.0 - 2.0 * u, 1.0 + 2.0 * u))
    return values


def _generic_draw(nominal: dict[str, float], rng: np.random.Generator, u: float
                  ) -> dict[str, float]:
    values = dict(nominal)
    factors: dict[str, float] = {}
    for name in nominal:
        if any(name.startswith(p) or p in name for p in _NOT_DRAWN):
            continue
        if name.endswith("_com_m") and name[:-6] + "_length_m" in factors:
            factors[name] = factors[name[:-6] + "_length_m"]
        else:
            spread = 2.0 * u if any(w in name for w in _WIDE) else u
            factors[name] = max(0.0, rng.uniform(1.0 - spread, 1.0 + spread))
        values[name] = nominal[name] * factors[name]
    return values


def packed_params(spec: PlantSpec, draws: Sequence[tuple[tuple[str, Any], ...]]) -> np.ndarray:
    """(K, P) packed parameters of each draw for a built-in model's kernel; (K, 1) zeros
    for a lab's plant (its kernel takes none)."""
    model = plant_model(spec)
    if not isinstance(model, PlantModel):
        return np.zeros((len(draws), 1))
    params_type = type(model.params)
    return np.stack([params_type.from_mapping(dict(d)).as_array() for d in draws])


def dip_params(spec: PlantSpec) -> DIPParams:
    """The nominal DIPParams of a DIP spec (the zero-dynamics check)."""
    return DIPParams.from_mapping(dict(spec[1]))
