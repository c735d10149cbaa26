"""A recording sink that appends columns computed from each row's time: an experiment's
disturbances beside the plant's own columns (plant.rec's `disturbance_<input>` columns).

`DisturbanceSink.record(row)` records the row with the disturbance of each input at the row's
run time (plant.rec's `sim_time_s`, its third column): the value the simulated plant adds to
that input from that tick on (plant_server/backends/sim.py). The loop calls it once a tick;
the table's vector is unpacked into the row's tuple, nothing else is allocated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from hil.dynamics.inputs import Inputs
from hil.experiment.signals import SignalTable
from hil.recording.recorder import Column

SIM_TIME = 2  # plant.rec's sim_time_s column


class _Sink(Protocol):
    def record(self, row: Sequence[float]) -> None: ...


def disturbance_columns(inputs: Inputs) -> list[Column]:
    """One column per input, `disturbance_<input>` in the input's unit, appended to
    plant.rec's columns when the experiment has disturbances."""
    return [Column(f"disturbance_{name}", unit)
            for name, unit in zip(inputs.names, inputs.units, strict=True)]


class DisturbanceSink:
    """Records each row of the plant with its disturbances appended (module docstring)."""

    __slots__ = ("_at", "_sink")

    def __init__(self, sink: _Sink, table: SignalTable) -> None:
        self._sink = sink
        self._at = table.at

    def record(self, row: Sequence[float]) -> None:
        self._sink.record((*row, *self._at(row[SIM_TIME])))
