"""A recording sink that appends an experiment's columns to each plant row: the actuators'
outputs (`actuator_<input>`) and the disturbances (`disturbance_<input>`), after plant.rec's
own columns.

`ExperimentSink.record(row)` records the row with, when the experiment has them, the output
of each input's actuator in the step that ended at this row (the step the row's control
`u` was held over: hil/experiment/actuator.py) and the disturbance of each input at the
row's run time (plant.rec's `sim_time_s`, its third column: the value the simulated plant adds
to that input from this tick on, plant_server/backends/sim.py). The loop calls it once a
tick; the vectors are unpacked into the row's tuple, nothing else is allocated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from hil.dynamics.inputs import Inputs
from hil.experiment.signals import SignalTable
from hil.recording.recorder import Column

SIM_TIME = 2  # plant.rec's sim_time_s column
NOTHING = np.zeros(0)


class _Sink(Protocol):
    def record(self, row: Sequence[float]) -> None: ...


def experiment_columns(inputs: Inputs, actuator: bool, disturbance: bool) -> list[Column]:
    """The columns `ExperimentSink` appends: one per input for the actuators' outputs (when
    `actuator`), then one per input for the disturbances (when `disturbance`), each in the
    input's unit."""
    pairs = list(zip(inputs.names, inputs.units, strict=True))
    return ([Column(f"actuator_{n}", u) for n, u in pairs] if actuator else []) + \
        ([Column(f"disturbance_{n}", u) for n, u in pairs] if disturbance else [])


def _no_disturbance(t_s: float) -> np.ndarray:
    return NOTHING


class ExperimentSink:
    """Records each plant row with its experiment columns appended (module docstring)."""

    __slots__ = ("_actuated", "_at", "_sink")

    def __init__(self, sink: _Sink, actuated: np.ndarray | None,
                 disturbance: SignalTable | None) -> None:
        """`actuated`: the actuators' output vector, read at each row (None: no actuators)."""
        self._sink = sink
        self._actuated = NOTHING if actuated is None else actuated
        self._at = _no_disturbance if disturbance is None else disturbance.at

    def record(self, row: Sequence[float]) -> None:
        self._sink.record((*row, *self._actuated, *self._at(row[SIM_TIME])))
