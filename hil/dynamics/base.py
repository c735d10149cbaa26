"""What every plant model shares on the Python side: parameter records and the model class.

A model module (``dip.py``, ``cartpole.py``, ``rotary.py``) holds only what is its own: a
frozen parameter dataclass, its numba kernels, its state names and units, and a
:class:`PlantModel` subclass naming them. Everything built on the kernels is here: the model's
``step``, ``derivatives``, ``energy`` and ``describe``, and the module-level functions
(``derivatives_at``, ``energy_at``, bound as each module's ``derivatives`` and
``total_energy``) that take any array-like state and the model's default parameters.

The numba kernels stay in their model's module: each model's integrator is unrolled over its
own state (tuples of scalars, no allocation), which a kernel shared across models could not
be without passing functions into compiled code. (The on-disk cache would allow sharing:
`hil.dynamics.jit` keys every cached kernel on all of this package's sources.)
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar, NamedTuple, Self

import numpy as np

from hil.dynamics.inputs import Inputs

DEFAULT_SUBSTEPS = 4  # RK4 substeps per step: 0.25 ms at a 1 kHz plant rate


@dataclasses.dataclass(frozen=True)
class ModelParams:
    """Base of the frozen parameter dataclasses.

    A subclass declares its fields (every one a float with its unit in the name), the
    constraints in :meth:`_validate`, and the packed vector its kernels read in :meth:`_pack`.
    The packed vector is computed once, at construction, and is read-only.
    """

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"{field.name} must be a real number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"{field.name} must be finite, got {value!r}")
        self._validate()
        packed = np.array(self._pack(), dtype=np.float64)
        packed.flags.writeable = False
        object.__setattr__(self, "_packed", packed)

    def _validate(self) -> None:
        raise NotImplementedError

    def _pack(self) -> tuple[float, ...]:
        raise NotImplementedError

    def as_array(self) -> np.ndarray:
        """The packed, read-only float64 vector of (derived) constants the kernels read."""
        packed: np.ndarray = self._packed  # type: ignore[attr-defined]  # set in __post_init__
        return packed

    def to_dict(self) -> dict[str, float]:
        """The parameters by field name, as plain floats (for msgpack/JSON)."""
        return {f.name: float(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> Self:
        """Build from a mapping of field names; unknown names are an error, missing ones default."""
        allowed = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(mapping) - set(allowed))
        if unknown:
            raise ValueError(
                f"unknown {cls.__name__} parameter(s) {', '.join(map(repr, unknown))}; "
                f"allowed: {', '.join(allowed)}"
            )
        return cls(**mapping)

    def replace(self, **changes: Any) -> Self:
        """A copy with some fields changed (validated like :meth:`from_mapping`)."""
        return self.from_mapping({**self.to_dict(), **changes})

    def _require_positive(self, *names: str) -> None:
        for name in names:
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value!r}")

    def _require_nonnegative(self, *names: str) -> None:
        for name in names:
            value = getattr(self, name)
            if not value >= 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")

    def _require_com_on_link(self, com_name: str, length_name: str) -> None:
        com, length = getattr(self, com_name), getattr(self, length_name)
        if not 0 < com <= length:
            raise ValueError(
                f"{com_name} must be in (0, {length_name}={length!r}], got {com!r}"
            )


class ModelKernels(NamedTuple):
    """The compiled functions of one model (numba dispatchers, called with the packed params).

    ``step(state, force, dt_s, substeps, p, out)``, ``derivatives(state, force, p, out)``,
    ``energy(state, p) -> float``.
    """

    step: Callable[..., None]
    derivatives: Callable[..., None]
    energy: Callable[..., float]


class PlantModel:
    """A simulated plant: fixed-step RK4 of a model's dynamics under zero-order-hold inputs.

    Subclasses set ``name``, ``state_names``, ``state_units``, ``params_type`` and ``kernels``,
    and ``input_name`` / ``input_unit`` when the input is not a force in N. A model of several
    inputs sets ``input_names`` and ``input_units`` and overrides :meth:`_input_limits`; its
    kernels take the input as a float64 array (a one-input model's take a float).
    """

    name: ClassVar[str]
    state_names: ClassVar[tuple[str, ...]]
    state_units: ClassVar[tuple[str, ...]]
    input_name: ClassVar[str] = "force"
    input_unit: ClassVar[str] = "N"
    input_names: ClassVar[tuple[str, ...] | None] = None  # several inputs: their names
    input_units: ClassVar[tuple[str, ...] | None] = None
    # The angles that must be near zero for "balanced" (gates, report); None: every "rad" state.
    upright_angles: ClassVar[tuple[str, ...] | None] = None
    # The states a verdict checks reach the target (None: the upright angles, as today) and
    # those compared modulo a full turn (None: the upright angles, the pendulums' own).
    regulated_states: ClassVar[tuple[str, ...] | None] = None
    wrapping_states: ClassVar[tuple[str, ...] | None] = None
    params_type: ClassVar[type[ModelParams]]
    kernels: ClassVar[ModelKernels]
    # Named initial states (`plant.initial_state: hanging`), one number per state each.
    initial_states: ClassVar[Mapping[str, tuple[float, ...]]] = MappingProxyType({})

    def __init__(
        self, params: ModelParams | None = None, substeps: int = DEFAULT_SUBSTEPS
    ) -> None:
        if params is None:
            params = self.params_type()
        if not isinstance(params, self.params_type):
            raise TypeError(
                f"params must be a {self.params_type.__name__}, got {type(params).__name__}"
            )
        if isinstance(substeps, bool) or not isinstance(substeps, numbers.Integral):
            raise TypeError(f"substeps must be an int, got {substeps!r}")
        if substeps < 1:
            raise ValueError(f"substeps must be >= 1, got {substeps}")
        self.params: ModelParams = params
        self.substeps: int = int(substeps)
        # Bound once so that step() does no attribute lookups beyond its own instance dict.
        self._p: np.ndarray = params.as_array()
        self._step_kernel: Callable[..., None] = self.kernels.step
        self._vector: bool = self.input_names is not None
        self.inputs: Inputs = self._inputs()
        upright = upright_angles(self.state_names, self.state_units, self.upright_angles)
        self.regulated: tuple[str, ...] = (upright if self.regulated_states is None
                                           else self.regulated_states)
        self.wraps: tuple[str, ...] = (upright if self.wrapping_states is None
                                       else self.wrapping_states)

    def use_params(self, params: ModelParams) -> None:
        """From the next :meth:`step` on, the model has ``params`` (of its own type): an
        experiment's parameter disturbance (hil/experiment/parameters.py). Nothing is
        compiled again: the kernels read the packed vector they are passed."""
        if not isinstance(params, self.params_type):
            raise TypeError(
                f"params must be a {self.params_type.__name__}, got {type(params).__name__}"
            )
        self.params = params
        self._p = params.as_array()

    def _inputs(self) -> Inputs:
        if self.input_names is None:
            return Inputs.single(self.input_name, self.input_unit, self.max_force_n)
        return Inputs.declared(self.input_names, self.input_units, self._input_limits(),
                               where=self.name)

    def _input_limits(self) -> tuple[Any, ...]:
        """Per input, L (meaning -L..L) or (low, high): a model of several inputs says."""
        return (self.max_force_n,)

    @property
    def max_force_n(self) -> float:
        """The first input's saturation in :meth:`step`, in its unit (the name is historical)."""
        return float(self.params.max_force_n)  # type: ignore[attr-defined]  # every model's

    @property
    def equilibrium(self) -> np.ndarray:
        """The state the plant is balanced about (upright, at rest: zeros)."""
        return np.zeros(len(self.state_names))

    @property
    def equilibrium_input(self) -> np.ndarray:
        """The trim: the input that holds :attr:`equilibrium` (zeros for the pendulums)."""
        return np.zeros(self.inputs.n)

    def step(self, state: np.ndarray, u: Any, dt_s: float, out: np.ndarray) -> None:
        """Advance ``state`` by ``dt_s`` under the input ``u`` held constant; write the result
        to ``out``.

        ``u`` is a float64 array of one entry per input (a float is a one-input ``u``).
        ``state`` and ``out`` are contiguous float64 vectors of the model's state length
        (``out`` may be ``state``; other dtypes make numba compile another specialization).
        Each input is saturated at its limits first. Creates no arrays for a float64 ``u``:
        the only heap traffic is numba's small per-argument record when it unboxes a call.
        """
        if u.__class__ is np.ndarray:
            u = self.input_vector(u) if self._vector or u.size != 1 else u.item(0)
        elif self._vector:
            u = self.input_vector(u)
        self._step_kernel(state, u, dt_s, self.substeps, self._p, out)

    def input_vector(self, u: Any) -> np.ndarray:
        """``u`` as a contiguous float64 array of one entry per input, or a ValueError."""
        if u.__class__ is np.ndarray and u.shape == (self.inputs.n,) and u.dtype == np.float64:
            return u
        array = np.ascontiguousarray(u, dtype=np.float64).reshape(-1)
        if array.shape != (self.inputs.n,):
            raise ValueError(f"{self.name} has {self.inputs.n} inputs "
                             f"{list(self.inputs.names)}: u must have {self.inputs.n} "
                             f"entries, got {np.shape(u)}")
        return array

    def derivatives(self, state: np.ndarray, u: Any) -> np.ndarray:
        """d state / dt at ``state`` under ``u`` (not saturated: the raw dynamics)."""
        return self.derivatives_at(state, u, self.params)

    def energy(self, state: np.ndarray) -> float:
        """Kinetic plus potential energy, J (potential zero at the pivot height)."""
        return self.energy_at(state, self.params)

    @classmethod
    def derivatives_at(
        cls, state: Any, u: Any, params: ModelParams | None = None
    ) -> np.ndarray:
        """d state / dt (a new array) at any array-like ``state`` under ``u`` (a float or one
        number per input, not saturated), with ``params`` (default: the model's defaults)."""
        vector = as_state_vector(state, len(cls.state_names))
        out = np.empty(len(cls.state_names))
        cls.kernels.derivatives(vector, cls._kernel_input(u), cls._params_array(params), out)
        return out

    @classmethod
    def _kernel_input(cls, u: Any) -> Any:
        """``u`` as the kernels take it: a float for one input, else a float64 array."""
        array = np.ascontiguousarray(u, dtype=np.float64).reshape(-1)
        n = 1 if cls.input_names is None else len(cls.input_names)
        if array.shape != (n,):
            raise ValueError(f"{cls.__name__} has {n} input(s): u must have {n} entries, got "
                             f"shape {np.shape(u)}")
        return float(array[0]) if cls.input_names is None else array

    @classmethod
    def energy_at(cls, state: Any, params: ModelParams | None = None) -> float:
        """Kinetic plus potential energy, J, at any array-like ``state`` (potential zero at
        the pivot height), with ``params`` (default: the model's defaults)."""
        vector = as_state_vector(state, len(cls.state_names))
        return float(cls.kernels.energy(vector, cls._params_array(params)))

    @classmethod
    def _params_array(cls, params: ModelParams | None) -> np.ndarray:
        return (_default_params(cls.params_type) if params is None else params).as_array()

    def describe(self) -> dict[str, Any]:
        """The model's description for the handshake: plain types only (msgpack/JSON)."""
        return describe_plant(self, self.params.to_dict(), self.upright_angles)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(params={self.params!r}, substeps={self.substeps})"


def preset_state(model: Any, preset: str) -> list[float]:
    """The initial state `model` (a model class or instance) names `preset` in its
    `initial_states`; ValueError naming the presets it has (or saying it has none)."""
    presets: Mapping[str, Any] = getattr(model, "initial_states", None) or {}
    name = getattr(model, "name", type(model).__name__)
    if preset in presets:
        return [float(v) for v in presets[preset]]
    n = len(getattr(model, "state_names", ()))
    if not presets:
        raise ValueError(f"plant {name!r} has no initial-state presets; give a list of {n} "
                         f"numbers, one per state {list(getattr(model, 'state_names', []))}")
    raise ValueError(f"{preset!r} is not an initial-state preset of plant {name!r}; its "
                     f"presets: {', '.join(presets)} (or give a list of {n} numbers)")


def upright_angles(names: Any, units: Any, declared: Any = None) -> tuple[str, ...]:
    """The states that are angles from upright: `declared`, else every state in "rad"."""
    if declared is not None:
        return tuple(declared)
    return tuple(n for n, u in zip(names, units, strict=True) if u == "rad")


def as_state_vector(state: Any, size: int) -> np.ndarray:
    """``state`` as a contiguous float64 vector of ``size`` elements, or a ValueError."""
    array = np.ascontiguousarray(state, dtype=np.float64)
    if array.shape != (size,):
        raise ValueError(f"state must have shape ({size},), got {array.shape}")
    return array


_DEFAULT_PARAMS: dict[type[ModelParams], ModelParams] = {}


def _default_params(params_type: type[ModelParams]) -> ModelParams:
    """One default parameter record per type (they are frozen), made on first use."""
    params = _DEFAULT_PARAMS.get(params_type)
    if params is None:
        params = _DEFAULT_PARAMS[params_type] = params_type()
    return params


def describe_plant(model: Any, params: dict[str, Any], declared_upright: Any) -> dict[str, Any]:
    """The handshake's description of any plant model (built-in or a lab's own): its
    ``name``, states, inputs and their limits, equilibrium and trim, the states it regulates
    and those that wrap, and substeps, with ``params`` as given. (Descriptions from before
    several inputs had ``max_force_n``, ``input_name``, ``input_unit`` and ``upright_angles``
    instead: readers of old run folders still know them.)"""
    inputs: Inputs = model.inputs
    trim = model.equilibrium_input
    return {
        "name": model.name,
        "state_names": list(model.state_names),
        "state_units": list(model.state_units),
        "params": params,
        **inputs.describe(),
        "equilibrium": model.equilibrium.tolist(),
        "equilibrium_input": None if trim is None else [float(v) for v in trim],
        "regulated": list(model.regulated),
        "wraps": list(model.wraps),
        "substeps": model.substeps,
    }
