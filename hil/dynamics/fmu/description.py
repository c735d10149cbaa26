"""What a plant is, read from an FMU's modelDescription.xml (FMI 2.0 or 3.0): the mapping
rules.

- Inputs: the variables of causality `input` and type Real (FMI 3: Float64), in the order
  they are declared, with their units and their `min`/`max` as the limits (1 .. MAX_INPUTS;
  each must have both).
- States: for model exchange the continuous states (the variables whose derivatives the
  ModelStructure lists), in that order; for co-simulation the outputs (type Real), all in
  declared order, or those `plant.fmu_outputs` names, in its order.
- Parameters: the variables of causality `parameter` (Real, Integer or Boolean; FMI 3:
  Float64, Int32 or Boolean), set from
  `plant.params` by name before initialisation.
- Units: a variable's own unit, else its declared type's, else "1" (dimensionless).

`read_plan` refuses (FmuError naming the fix) what the runtime cannot run: another FMI
version, an FMU with event indicators run as model exchange, no inputs, an input without
limits, too many states, a `plant.fmu_outputs` name that is no output.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from hil.dynamics.inputs import MAX_INPUTS, MAX_STATES, Inputs, InputsError
from hil.dynamics.plugins import PluginError

KEY = "plant.fmu"
PARAMETER_TYPES = ("Real", "Integer", "Boolean", "Float64", "Int32")  # instance.SETTERS
VERSIONS = {"2.0": 2, "3.0": 3}


class FmuError(PluginError):
    """An FMU the runtime cannot run as a plant; the message names the problem and the fix."""


@dataclass(frozen=True)
class Parameter:
    """A parameter the FMU lets `plant.params` set: its value reference and type."""

    value_reference: int
    type: str
    start: str | None


@dataclass(frozen=True)
class FmuPlan:
    """Everything the runtime needs from the modelDescription, in plain types."""

    kind: str  # "model_exchange" or "co_simulation"
    fmi_version: int  # 2 or 3
    model_name: str
    model_identifier: str
    guid: str
    inputs: Inputs
    input_refs: tuple[int, ...]
    state_names: tuple[str, ...]
    state_units: tuple[str, ...]
    state_refs: tuple[int, ...]  # ME: the states; CS: the outputs read as the state
    parameters: dict[str, Parameter]
    needs_completed_step: bool


def _attr(variable: Any, name: str) -> Any:
    own = getattr(variable, name, None)
    if own is not None:
        return own
    declared = getattr(variable, "declaredType", None)
    return getattr(declared, name, None) if declared is not None else None


def unit_of(variable: Any) -> str:
    return str(_attr(variable, "unit") or "1")


def _limits(variable: Any) -> tuple[float, float]:
    low, high = _attr(variable, "min"), _attr(variable, "max")
    try:
        bounds = (float(low), float(high))
    except (TypeError, ValueError):
        bounds = (math.nan, math.nan)
    if not (all(map(math.isfinite, bounds)) and bounds[0] < bounds[1]):
        raise FmuError(f"{KEY}: input {variable.name!r} has min={low!r}, max={high!r}; the "
                       f"runtime saturates each input at its limits: give it finite min < max "
                       f"in the model (OpenModelica: `input Real F(min=-20, max=20)`; "
                       f"Simulink: the Inport's minimum and maximum)")
    return bounds


def _inputs(md: Any) -> tuple[Inputs, tuple[int, ...]]:
    found = [v for v in md.modelVariables if v.causality == "input"]
    real = [v for v in found if v.type in ("Real", "Float64")]
    if not real:
        other = f" ({', '.join(f'{v.name}: {v.type}' for v in found)} are not Real)" \
            if found else ""
        raise FmuError(f"{KEY}: {md.modelName} has no input of type Real{other}; a plant needs "
                       f"1 to {MAX_INPUTS} real inputs (causality=\"input\") for its control")
    if len(real) > MAX_INPUTS:
        raise FmuError(f"{KEY}: {md.modelName} has {len(real)} real inputs; a plant has at most "
                       f"{MAX_INPUTS} (MAX_INPUTS): leave the others out of the exported model")
    bounds = [_limits(v) for v in real]
    try:
        inputs = Inputs(tuple(v.name for v in real), tuple(unit_of(v) for v in real),
                        tuple(lo for lo, _ in bounds), tuple(hi for _, hi in bounds))
    except InputsError as exc:
        raise FmuError(f"{KEY}: {exc}") from None
    return inputs, tuple(int(v.valueReference) for v in real)


def _me_states(md: Any) -> list[Any]:
    if md.numberOfEventIndicators:
        raise FmuError(f"{KEY}: {md.modelName} has {md.numberOfEventIndicators} event "
                       f"indicators; the runtime integrates model exchange FMUs with fixed-step "
                       f"RK4 and does not handle events: export the model without events "
                       f"(no if/when on states), or as co-simulation")
    states = [d.variable.derivative for d in md.derivatives]
    if not states or any(s is None for s in states):
        raise FmuError(f"{KEY}: {md.modelName} lists no continuous states (ModelStructure/"
                       f"Derivatives); a model exchange plant needs them: export it as "
                       f"co-simulation, or with its states")
    return states


def _cs_states(md: Any, chosen: list[str] | None) -> list[Any]:
    outputs = [v for v in md.modelVariables
               if v.causality == "output" and v.type in ("Real", "Float64")]
    if chosen is None:
        if not outputs:
            raise FmuError(f"{KEY}: {md.modelName} has no real outputs; a co-simulation plant's "
                           f"state is its outputs (causality=\"output\")")
        return outputs
    by_name = {v.name: v for v in outputs}
    unknown = [n for n in chosen if n not in by_name]
    if unknown or not chosen or len(set(chosen)) != len(chosen):
        raise FmuError(f"plant.fmu_outputs: {chosen} must name distinct real outputs of "
                       f"{md.modelName}; {unknown or 'duplicates'} are not; its outputs are "
                       f"{list(by_name)}")
    return [by_name[n] for n in chosen]


def _parameters(md: Any) -> dict[str, Parameter]:
    return {v.name: Parameter(int(v.valueReference), v.type, v.start)
            for v in md.modelVariables
            if v.causality == "parameter" and v.type in PARAMETER_TYPES}


def read_plan(md: Any, outputs: list[str] | None) -> FmuPlan:
    """The plan of the fmpy ModelDescription `md`; FmuError naming what cannot be run."""
    if md.fmiVersion not in VERSIONS:
        raise FmuError(f"{KEY}: {md.modelName} is FMI {md.fmiVersion}; the runtime runs FMI "
                       f"2.0 and 3.0 FMUs: export for one of them (OpenModelica: "
                       f"buildModelFMU(..., version=\"2.0\"); Simulink: exportToFMU(..., "
                       f"'FMIVersion', '2.0'))")
    interface = md.modelExchange if md.modelExchange is not None else md.coSimulation
    if interface is None:
        raise FmuError(f"{KEY}: {md.modelName} declares neither ModelExchange nor "
                       f"CoSimulation")
    me = md.modelExchange is not None
    if me and outputs is not None:
        raise FmuError("plant.fmu_outputs chooses a co-simulation FMU's state; this FMU is run "
                       "as model exchange, whose state is its continuous states: remove "
                       "plant.fmu_outputs")
    states = _me_states(md) if me else _cs_states(md, outputs)
    if len(states) > MAX_STATES:
        raise FmuError(f"{KEY}: {md.modelName} has {len(states)} states; a plant has 1 to "
                       f"{MAX_STATES} (MAX_STATES, the wire's vector limit)"
                       + ("" if me else ": choose some with plant.fmu_outputs"))
    inputs, input_refs = _inputs(md)
    return FmuPlan(
        kind="model_exchange" if me else "co_simulation", fmi_version=VERSIONS[md.fmiVersion],
        model_name=str(md.modelName),
        model_identifier=str(interface.modelIdentifier), guid=str(md.guid), inputs=inputs,
        input_refs=input_refs, state_names=tuple(s.name for s in states),
        state_units=tuple(unit_of(s) for s in states),
        state_refs=tuple(int(s.valueReference) for s in states),
        parameters=_parameters(md),
        needs_completed_step=bool(me and getattr(interface, "needsCompletedIntegratorStep",
                                                 False)))
