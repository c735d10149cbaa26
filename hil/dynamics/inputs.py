"""A plant's inputs: names, units and limits, one entry per input (1 .. `MAX_INPUTS`).

Every layer reads the inputs from here: the plant model (built in or a lab's own) declares
them, the handshake's description carries them (`input_names`, `input_units`, `input_limits`,
`equilibrium_input`), and gates, recording, reports and the controller rebuild them with
`Inputs.from_description`.

A plant declares (docs/extending.md):

    input_names = ("thrust_left", "thrust_right")
    input_units = ("N", "N")
    input_limits = ((0.0, 40.0), (0.0, 40.0))   # per input: L (meaning -L..L) or (low, high)

or, for one input, the older `input_name`, `input_unit` and `input_limit` (or `max_force_n`).
A plant that declares `input_names` gets its input as a float64 array, even of one entry;
one that declares only `input_name` gets a float, as before.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_INPUTS = 8  # inputs per plant: a quadrotor has 4, the wire and shm slots are sized for 8
MAX_STATES = 32  # states per plant (the wire's vector limit)


class InputsError(ValueError):
    """The inputs a plant declares do not fit the contract; the message names the fix."""


@dataclass(frozen=True, slots=True)
class Inputs:
    """The inputs of a plant, in order: `names[i]` in `units[i]`, kept in [low[i], high[i]]."""

    names: tuple[str, ...]
    units: tuple[str, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]

    def __post_init__(self) -> None:
        n = len(self.names)
        if not 1 <= n <= MAX_INPUTS:
            raise InputsError(f"a plant has 1 to {MAX_INPUTS} inputs, got {n} "
                              f"({list(self.names)}); MAX_INPUTS is the limit of the wire and "
                              f"of the shared-memory slots")
        if len(set(self.names)) != n or not all(isinstance(s, str) and s for s in self.names):
            raise InputsError(f"input_names must be distinct, non-empty strings, got "
                              f"{list(self.names)}")
        for what, values in (("input_units", self.units), ("low", self.low),
                             ("high", self.high)):
            if len(values) != n:
                raise InputsError(f"{what} has {len(values)} entries for {n} inputs "
                                  f"{list(self.names)}; give one per input")
        for name, lo, hi in zip(self.names, self.low, self.high, strict=True):
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise InputsError(f"input {name!r}: limits ({lo!r}, {hi!r}) must be finite "
                                  f"with low < high")

    @property
    def n(self) -> int:
        return len(self.names)

    @property
    def magnitude(self) -> tuple[float, ...]:
        """Per input, the largest |u| its limits allow (the scale of the sanity check)."""
        return tuple(max(abs(lo), abs(hi)) for lo, hi in zip(self.low, self.high, strict=True))

    def clip(self, u: np.ndarray) -> np.ndarray:
        """`u` held within the limits (a new array)."""
        clipped: np.ndarray = np.minimum(np.maximum(u, self.low), self.high)
        return clipped

    def describe(self) -> dict[str, Any]:
        """The description's input keys (plain types, for msgpack and JSON)."""
        return {"input_names": list(self.names), "input_units": list(self.units),
                "input_limits": [[lo, hi] for lo, hi in zip(self.low, self.high, strict=True)]}

    @classmethod
    def single(cls, name: str, unit: str, limit: float) -> Inputs:
        """One input `name` in `unit`, kept within -limit .. limit."""
        return cls((name,), (unit,), (-float(limit),), (float(limit),))

    @classmethod
    def from_description(cls, description: dict[str, Any]) -> Inputs:
        """The inputs of a handshake description (`input_names`, `input_units`,
        `input_limits`); InputsError naming what is missing or wrong."""
        try:
            names, units = description["input_names"], description["input_units"]
            limits = description["input_limits"]
        except KeyError as exc:
            raise InputsError(f"the plant's description has no {exc.args[0]!r}") from None
        return cls.declared(names, units, limits, where="the plant's description")

    @classmethod
    def declared(cls, names: Any, units: Any, limits: Any, where: str) -> Inputs:
        """Inputs from what a plant (or its description) declares: limits per input as L
        (meaning -L..L) or (low, high). InputsError naming `where` and the fix."""
        if isinstance(names, str) or not _is_sequence(names):
            raise InputsError(f"{where}: input_names must be a tuple of strings, got "
                              f"{names!r}")
        if isinstance(units, str) or not _is_sequence(units):
            raise InputsError(f"{where}: input_units must be a tuple of strings, one per "
                              f"input, got {units!r}")
        if isinstance(limits, (str, numbers.Real)) or not _is_sequence(limits):
            raise InputsError(f"{where}: input_limits must have one entry per input, each L "
                              f"(meaning -L..L) or (low, high), got {limits!r}")
        if len(limits) != len(names):
            raise InputsError(f"{where}: {len(names)} input_names {list(names)} but "
                              f"{len(limits)} input_limits {list(limits)}; give one limit "
                              f"per input")
        bounds = [_bounds(limit, name, where) for name, limit in zip(names, limits, strict=True)]
        try:
            return cls(tuple(names), tuple(str(u) for u in units),
                       tuple(lo for lo, _ in bounds), tuple(hi for _, hi in bounds))
        except InputsError as exc:
            raise InputsError(f"{where}: {exc}") from None


def _is_sequence(value: Any) -> bool:
    return isinstance(value, (list, tuple, np.ndarray))


def _real(value: Any) -> bool:
    return isinstance(value, (numbers.Real, np.number)) and not isinstance(value, bool) \
        and math.isfinite(float(value))


def _bounds(limit: Any, name: Any, where: str) -> tuple[float, float]:
    if _real(limit):
        if not float(limit) > 0:
            raise InputsError(f"{where}: input {name!r} has limit {limit!r}; a single number "
                              f"L means -L..L and must be > 0")
        return -float(limit), float(limit)
    if _is_sequence(limit) and len(limit) == 2 and all(_real(v) for v in limit) \
            and float(limit[0]) < float(limit[1]):
        return float(limit[0]), float(limit[1])
    raise InputsError(f"{where}: input {name!r} has limit {limit!r}; give L (meaning -L..L, "
                      f"L > 0) or (low, high) with low < high, finite")


class FirstInputNames:
    """The single-input names of a model's input 0 (`max_force_n`, `input_name`,
    `input_unit`), kept for their readers, from the model's `inputs`."""

    inputs: Inputs

    @property
    def max_force_n(self) -> float:
        """The magnitude of input 0's limits (the name is historical)."""
        return float(self.inputs.magnitude[0])

    @property
    def input_name(self) -> str:
        return self.inputs.names[0]

    @property
    def input_unit(self) -> str:
        return self.inputs.units[0]
