"""An experiment's parameter disturbances: a plant parameter changed at a time.

`experiment.disturbances` entries that name a `parameter` (hil/config.py
`ParameterDisturbance`): from `at_s` on, the parameter is its value plus `value` (`mode:
add`: a mass put on the cart) or `value` itself (`mode: set`). Several on one parameter
apply in time order, each on the value before it. The schedule is resolved once, before the
run: each change's whole parameter record is built and validated then (a change that makes a
mass negative is refused naming the entry), so the plant only swaps a packed vector in
(`PlantModel.use_params`, read by the compiled step from its next call: nothing recompiles).

Only the built-in models (a frozen `ModelParams` record: hil/dynamics) can be changed; a
plug-in plant or an FMU is refused, naming why. The input limits (`max_force_n`) cannot be
changed: the gates hold the limits the plant declared at the handshake.

`ParameterSink` appends the changed parameters' values to each plant row (`param_<name>`),
as the plant had them from that row's time on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from hil.config import ConfigError, ExperimentConfig, ParameterDisturbance

SIM_TIME = 2  # plant.rec's sim_time_s column
FIXED = ("max_force_n",)  # the input limits, declared at the handshake


def parameter_changes(experiment: ExperimentConfig | None) -> list[tuple[int, Any]]:
    """(index in `experiment.disturbances`, entry) of each parameter disturbance."""
    if experiment is None:
        return []
    return [(i, d) for i, d in enumerate(experiment.disturbances)
            if isinstance(d, ParameterDisturbance)]


def parameter_names(model: Any) -> tuple[str, ...] | None:
    """The names of the parameters the runtime can change on `model`; None when it cannot
    change any (a plug-in plant, an FMU)."""
    params = getattr(model, "params", None)
    if params is None or not hasattr(params, "replace") or not hasattr(model, "use_params"):
        return None
    return tuple(n for n in params.to_dict() if n not in FIXED)


@dataclass(frozen=True)
class ParameterSchedule:
    """The run's parameter records in time order: `records[k]` from `times_ns[k]` on (run
    time); `names` the parameters that change and `values[k]` theirs under `records[k]`."""

    times_ns: tuple[int, ...]
    records: tuple[Any, ...]
    names: tuple[str, ...]
    values: np.ndarray  # (changes, names)

    @classmethod
    def build(cls, experiment: ExperimentConfig | None, model: Any) -> ParameterSchedule | None:
        """The schedule of `experiment`'s parameter disturbances on `model` (None without
        any); ConfigError naming the entry that cannot be applied."""
        changes = parameter_changes(experiment)
        if not changes:
            return None
        known = parameter_names(model)
        name = getattr(model, "name", type(model).__name__)
        if known is None:
            i = changes[0][0]
            raise ConfigError(f"experiment.disturbances[{i}].parameter: plant {name!r} has no "
                              "parameters the runtime can change during a run (a plug-in "
                              "plant or an FMU); parameter disturbances need a built-in model")
        for i, d in changes:
            if d.parameter not in known:
                raise ConfigError(f"experiment.disturbances[{i}].parameter: {d.parameter!r} is "
                                  f"not a parameter of plant {name!r} the runtime can change; "
                                  f"its parameters: {', '.join(known)}")
        record = model.params
        times, records = [0], [record]
        for i, d in sorted(changes, key=lambda c: (c[1].at_s, c[0])):
            now = getattr(record, d.parameter)
            new = d.value if d.mode == "set" else now + d.value
            try:
                record = record.replace(**{d.parameter: new})
            except ValueError as exc:
                raise ConfigError(f"experiment.disturbances[{i}]: {d.parameter} would be "
                                  f"{new:g} from {d.at_s:g} s: {exc}") from None
            times.append(round(d.at_s * 1e9))
            records.append(record)
        names = tuple(dict.fromkeys(d.parameter for _, d in changes))
        values = np.array([[getattr(r, n) for n in names] for r in records], dtype=np.float64)
        return cls(tuple(times), tuple(records), names, values)

    def events(self) -> list[dict[str, Any]]:
        """Each change, for plant.json: when (run time) and the parameters' values from then."""
        return [{"time_s": t / 1e9, **dict(zip(self.names, map(float, row), strict=True))}
                for t, row in zip(self.times_ns[1:], self.values[1:], strict=True)]


class _Sink(Protocol):
    def record(self, row: Sequence[float]) -> None: ...


class ParameterSink:
    """Records each plant row with the changed parameters' values at its time appended."""

    __slots__ = ("_k", "_now", "_sink", "_times_s", "_values")

    def __init__(self, sink: _Sink, schedule: ParameterSchedule) -> None:
        self._sink = sink
        self._times_s = [t * 1e-9 for t in schedule.times_ns]
        self._values = schedule.values
        self._k = 0
        self._now = tuple(schedule.values[0].tolist())

    def record(self, row: Sequence[float]) -> None:
        k, times = self._k, self._times_s
        if k + 1 < len(times) and row[SIM_TIME] >= times[k + 1]:
            while k + 1 < len(times) and row[SIM_TIME] >= times[k + 1]:
                k += 1
            self._k = k
            self._now = tuple(self._values[k].tolist())
        self._sink.record((*row, *self._now))
