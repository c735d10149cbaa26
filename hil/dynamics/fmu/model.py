"""An FMU as a plant model: the interface of `hil.dynamics.base.PlantModel` over an instance.

`FmuModelExchange`: the runtime's RK4 (`plant.substeps` steps per step) over the FMU's
derivatives; the state is the FMU's continuous states, set before every evaluation, so a step
is a function of (state, input) as for a built-in model, and the plant can be linearised
(`derivatives`) and trimmed. `FmuCoSimulation`: `plant.substeps` doSteps per step; the
FMU keeps its own state and the runtime reads its outputs as the state, so a step continues
from where the last one ended (the `state` it is given is not used) and nothing can be
linearised. Both saturate each input at its limits, as for every plant.

A failing FMI call in a step raises `FmuStepError` naming the call, the FMU's time and its
log; the plant loop then applies the safe output and ends the run with that reason.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hil.dynamics.base import describe_plant
from hil.dynamics.contract import PlantStepError, Trim, default_regulated, find_trim
from hil.dynamics.fmu import kernels
from hil.dynamics.fmu.description import KEY, FmuError
from hil.dynamics.fmu.instance import FmuInstance
from hil.dynamics.inputs import FirstInputNames
from hil.dynamics.plugins import PluginError

STATUS_NAMES = ("OK", "Warning", "Discard", "Error", "Fatal", "Pending")
ASKED = {kernels.EVENT_ASKED: "an event", kernels.TERMINATE_ASKED: "to terminate"}


class FmuStepError(PlantStepError):
    """An FMI call failed during a step: the FMU (not the runtime) is at fault."""


class FmuPlant(FirstInputNames):
    """What both kinds share: the description, the inputs, the step's buffers."""

    def __init__(self, instance: FmuInstance, substeps: int, params: dict[str, Any]) -> None:
        if isinstance(substeps, bool) or not isinstance(substeps, int) or substeps < 1:
            raise ValueError(f"substeps must be an int >= 1, got {substeps!r}")
        plan = instance.plan
        self.instance = instance
        self.name = f"fmu:{plan.model_name}"
        self.kind = plan.kind
        self.state_names = plan.state_names
        self.state_units = plan.state_units
        self.inputs = plan.inputs
        self.substeps = substeps
        self.params = dict(params)
        self.regulated = default_regulated(self.state_names, self.state_units)
        self.wraps: tuple[str, ...] = ()
        self._version = plan.fmi_version
        self._fp = kernels.pack_setup(instance.functions, instance.component, substeps,
                                      plan.needs_completed_step, plan.fmi_version == 3)
        self._refs = np.array(plan.input_refs, dtype=np.uint32)
        # low, high, and the inputs as last set
        self._lims = np.array([self.inputs.low, self.inputs.high, np.zeros(self.inputs.n)])
        self._work = kernels.new_work(len(self.state_names))
        self._info = self._work[kernels.INFO]
        self._held = self._lims[2]

    @property
    def time_s(self) -> float:
        """The FMU's time: the sum of the steps so far, s."""
        return float(self._info[kernels.NOW])

    @property
    def equilibrium(self) -> np.ndarray:
        """The state to hold: zeros (the FMU's states or outputs at rest, upright)."""
        return np.zeros(len(self.state_names))

    def _input(self, u: Any) -> np.ndarray:
        if u.__class__ is np.ndarray and u.dtype == np.float64 and u.shape == self._held.shape:
            return u
        array = np.ascontiguousarray(u, dtype=np.float64).reshape(-1)
        if array.shape != self._held.shape:
            raise ValueError(f"{self.name} has {self.inputs.n} input(s) "
                             f"{list(self.inputs.names)}: u must have {self.inputs.n} "
                             f"entries, got shape {np.shape(u)}")
        return array

    def _fault(self, code: int) -> FmuStepError:
        call, status = kernels.calls(self._version)[code // 8], code % 8
        at = f"at t = {self._info[0]:.6g} s"
        if status in ASKED:
            return FmuStepError(f"{self.name}: {call} asked for {ASKED[status]} {at}, which "
                                f"the runtime does not handle (no events: docs/fmu.md)")
        return FmuStepError(f"{self.name}: {call} returned fmi{self._version}"
                            f"{STATUS_NAMES[status]} {at}{self.instance.log.tail()}")

    def describe(self) -> dict[str, Any]:
        params = {k: v for k, v in self.params.items() if isinstance(v, (int, float, bool))}
        return {**describe_plant(self, params, None), "fmu": self.kind,
                "fmi_version": self._version}

    def close(self) -> None:
        """Free the FMU (also done when the model is collected)."""
        self.instance.close()


class FmuModelExchange(FmuPlant):
    """A model exchange FMU integrated by the runtime (module docstring)."""

    def __init__(self, instance: FmuInstance, substeps: int, params: dict[str, Any]) -> None:
        super().__init__(instance, substeps, params)
        self._trim: Trim | None = None

    def step(self, state: np.ndarray, u: Any, dt_s: float, out: np.ndarray) -> None:
        """RK4 over `dt_s` in `substeps` steps of the FMU's derivatives, each input saturated
        and held; `out` may be `state`. FmuStepError if an FMI call fails."""
        code = kernels.me_step(self._fp, self._refs, self._input(u), self._lims, dt_s, state,
                               out, self._work)
        if code:
            raise self._fault(code)

    def derivatives(self, state: Any, u: Any) -> np.ndarray:
        """d state / dt at `state` under `u` (not saturated: the raw dynamics), a new array."""
        x = np.array(state, dtype=np.float64).reshape(-1)
        if x.shape != (len(self.state_names),):
            raise ValueError(f"state must have shape ({len(self.state_names)},), got "
                             f"{np.shape(state)}")
        dx = np.empty_like(x)
        code = kernels.me_derivatives(self._fp, self._refs, self._input(u), self._lims, x, dx,
                                      self._work)
        if code:
            raise self._fault(code)
        return dx

    def trim(self) -> Trim:
        """The input within the limits that holds the equilibrium (found once)."""
        if self._trim is None:
            try:
                self._trim = find_trim(self.derivatives, self.equilibrium, self.inputs)
            except FmuStepError as exc:
                self._trim = Trim(np.full(self.inputs.n, np.nan), math.inf, math.nan, False,
                                  str(exc))
        return self._trim

    @property
    def equilibrium_input(self) -> np.ndarray | None:
        trim = self.trim()
        return trim.u.copy() if trim.found else None

    def check_at(self, state: Any) -> None:
        """PluginError unless the derivatives at `state` under zero input are finite."""
        try:
            d = self.derivatives(state, np.zeros(self.inputs.n))
        except FmuStepError as exc:
            raise PluginError(f"{KEY}: at plant.initial_state: {exc}") from None
        if not np.all(np.isfinite(d)):
            raise PluginError(f"{KEY}: {self.name}'s derivatives are not finite at "
                              f"plant.initial_state {list(state)}: {d.tolist()}")


class FmuCoSimulation(FmuPlant):
    """A co-simulation FMU stepped by its own solver (module docstring)."""

    def __init__(self, instance: FmuInstance, substeps: int, params: dict[str, Any]) -> None:
        super().__init__(instance, substeps, params)
        self._out_refs = np.array(instance.plan.state_refs, dtype=np.uint32)

    def step(self, state: np.ndarray, u: Any, dt_s: float, out: np.ndarray) -> None:
        """`substeps` doSteps over `dt_s` under `u` (saturated, held); the outputs into
        `out`. `state` is not read: the FMU carries its own. FmuStepError if a call fails."""
        code = kernels.cs_step(self._fp, self._refs, self._input(u), self._lims, dt_s,
                               self._out_refs, out, self._work)
        if code:
            raise self._fault(code)

    def outputs(self) -> np.ndarray:
        """The outputs read as the state, now (a new array)."""
        refs = list(map(int, self._out_refs))
        fmu = self.instance.fmu
        values = fmu.getReal(refs) if self._version == 2 else fmu.getFloat64(refs)
        return np.array(values, dtype=np.float64)

    def _no_model(self, what: str) -> FmuError:
        return FmuError(f"{KEY}: {self.name} is a co-simulation FMU: it has no derivatives, "
                        f"so {what}; export it for model exchange (docs/fmu.md), or use a "
                        f"law that needs no model of the plant")

    def derivatives(self, state: Any, u: Any) -> np.ndarray:
        raise self._no_model("its dynamics cannot be evaluated at a chosen state")

    def trim(self) -> Trim:
        raise self._no_model("it cannot be trimmed or linearised")

    @property
    def equilibrium_input(self) -> None:
        """Unknown: a co-simulation FMU cannot be trimmed."""
        return None

    def check_at(self, state: Any) -> None:
        """PluginError unless `state` is where the FMU starts (its outputs at t = 0): a
        co-simulation FMU's state is set by its start values and parameters, not by us."""
        start = self.outputs()
        given = np.asarray(state, dtype=np.float64)
        if not np.allclose(given, start, rtol=1e-9, atol=1e-12):
            raise PluginError(
                f"plant.initial_state: {given.tolist()} is not where {self.name} starts: its "
                f"outputs {list(self.state_names)} at t = 0 are {start.tolist()}. A "
                f"co-simulation FMU starts where its start values put it: set "
                f"plant.initial_state to those, or the FMU's start parameters in plant.params")
