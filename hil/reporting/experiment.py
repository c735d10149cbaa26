"""report.json's `experiment` section: the run's reference and disturbances, and the control
metrics of its plant recording (hil/experiment/metrics.py), and the gates that bound them.

The plant process measures its own recording when the run ends (`experiment_section`):

- per referenced state: its signal, its tracking error's IAE, ISE and ITAE from the signal's
  `at_s` (the error is target - state, wrapped for a state that wraps), and for a step the
  step metrics (rise and settling time, overshoot, peak, steady-state error) over the step's
  window: from the step to the first disturbance after it, or to the run's end;
- per input: the control effort (integral of u^2) and the peak |u| over the run;
- with `experiment.swingup`, the swing-up time of its state (`swingup`: `time_s`, `caught`,
  `entries`; hil/experiment/metrics.py `swingup_time`).

`metrics` flattens them as `<state>.<metric>`, `<input>.<metric>` and `swingup.<metric>`,
the names `gates.metrics` bounds (`metric_gates`: a critical gate `metrics.<name>` each, passed when
|value| <= bound, so a signed steady-state error is bounded both ways; a name the run has
not fails its gate naming the ones it has). `final_target` is the target at
the run's end: the at_target gate judges the final state against it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hil.config import ExperimentConfig
from hil.reporting.scoring import gate

if TYPE_CHECKING:  # numpy, numba and the recorder load only where metrics are measured
    import numpy as np

    from hil.recording.recorder import Recording

FULL_TURN = 2.0 * math.pi


def experiment_section(experiment: ExperimentConfig, plant: Mapping[str, Any],
                       recording: str | Path | None, duration_s: float,
                       base_dir: str | None = None) -> dict[str, Any]:
    """The section for a run of `experiment` on the plant described as `plant`, measured
    from the plant recording at `recording` (None: recording was off, no metrics); a csv
    reference's file is read relative to `base_dir` and its points kept in the section."""
    from hil.experiment import metrics as m
    from hil.experiment.plan import reference_table
    from hil.recording.recorder import RecordingError, read_recording

    names = list(plant["state_names"])
    table = reference_table(experiment, names, plant.get("equilibrium") or [0.0] * len(names),
                            base_dir)
    section: dict[str, Any] = {
        "reference": [_dumped(r, table) for r in experiment.reference],
        "disturbances": [d.model_dump(mode="json") for d in experiment.disturbances],
        "sensors": experiment.sensors.model_dump(mode="json"),
        "final_target": table.at(duration_s).tolist(),
        "metrics": None, "states": {}, "inputs": {}}
    if recording is None:
        section["note"] = "record.enabled is false: no recording to measure"
        return section
    try:
        rec = read_recording(recording)
    except (OSError, RecordingError) as exc:
        section["note"] = f"no metrics: cannot read {recording}: {exc}"
        return section
    if rec.rows < 2:
        section["note"] = f"no metrics: the recording has {rec.rows} rows"
        return section
    try:  # plant.json is written whatever happens here: a failure is named, not raised
        t = rec["sim_time_s"]
        section["states"] = _state_metrics(experiment, plant, rec, table.series(t))
        section["inputs"] = {name: m.effort(t, rec[name]) for name in rec.inputs}
        if experiment.swingup is not None:
            section["swingup"] = _swingup(experiment, plant, rec, table.series(t))
    except Exception as exc:
        section.update(states={}, inputs={}, note=f"no metrics: measuring {recording} failed: "
                                                  f"{type(exc).__name__}: {exc}")
        return section
    section["metrics"] = flat_metrics(section)
    return section


def _dumped(reference: Any, table: Any) -> dict[str, Any]:
    """A reference as the section keeps it: a csv one with its points, [time_s, value]."""
    dumped = reference.model_dump(mode="json")
    if reference.signal == "csv":
        row = next(r for r in table.table[1:] if int(r[1]) == table.names.index(
            reference.state))
        first, count = int(row[3]), int(row[4])
        dumped["points"] = table.table[first:first + count, 2:4].tolist()
    return dumped


def _state_metrics(experiment: ExperimentConfig, plant: Mapping[str, Any], rec: Recording,
                   targets: np.ndarray) -> dict[str, Any]:
    import numpy as np

    from hil.experiment import metrics as m

    t = rec["sim_time_s"]
    names = list(plant["state_names"])
    wraps = set(plant.get("wraps") or ())
    out: dict[str, Any] = {}
    for ref in experiment.reference:
        i = names.index(ref.state)
        y = rec[ref.state]
        error = targets[:, i] - y
        if ref.state in wraps:
            error = error - FULL_TURN * np.floor((error + math.pi) / FULL_TURN)
        figures: dict[str, Any] = {"signal": ref.signal, "at_s": ref.at_s,
                                   **m.tracking_errors(t, error, ref.at_s)}
        if ref.signal == "step":
            until = min((d.at_s for d in experiment.disturbances if d.at_s > ref.at_s),
                        default=math.inf)
            figures.update(m.step_metrics(t, y, ref.at_s, ref.value, until))
            figures["window_end_s"] = None if math.isinf(until) else until
        out[ref.state] = figures
    return out


def _swingup(experiment: ExperimentConfig, plant: Mapping[str, Any], rec: Recording,
             targets: np.ndarray) -> dict[str, Any]:
    """The swing-up time of `experiment.swingup`'s state, from its target (wrapped)."""
    import numpy as np

    from hil.experiment import metrics as m

    spec = experiment.swingup
    assert spec is not None
    wraps = list(plant.get("wraps") or ())
    state = spec.state or (wraps[0] if wraps else None)
    figures: dict[str, Any] = {"state": state, "window_rad": spec.window_rad,
                               "hold_s": spec.hold_s}
    if state is None:
        return {**figures, "time_s": None, "caught": False, "entries": 0,
                "note": "experiment.swingup.state is not given and the plant has no "
                        "wrapping state to take: name the angle"}
    i = list(plant["state_names"]).index(state)
    error = rec[state] - targets[:, i]
    if state in wraps:
        error = error - FULL_TURN * np.floor((error + math.pi) / FULL_TURN)
    return {**figures, **m.swingup_time(rec["sim_time_s"], error, spec.window_rad,
                                        spec.hold_s)}


_NOT_METRICS = ("signal", "at_s", "value", "initial", "final", "window_end_s")
_SWINGUP_METRICS = ("time_s", "caught", "entries")


def flat_metrics(section: Mapping[str, Any]) -> dict[str, float | None]:
    """`<state>.<metric>` and `<input>.<metric>` -> value (None: not measurable)."""
    flat: dict[str, float | None] = {}
    for group in ("states", "inputs"):
        for name, figures in (section.get(group) or {}).items():
            for key, value in figures.items():
                if key not in _NOT_METRICS:
                    finite = isinstance(value, float | int) and math.isfinite(value)
                    flat[f"{name}.{key}"] = float(value) if finite else None
    swingup = section.get("swingup") or {}
    for key in _SWINGUP_METRICS if swingup else ():
        value = swingup.get(key)
        flat[f"swingup.{key}"] = None if value is None else float(value)
    return flat


def metric_gates(section: Mapping[str, Any] | None, bounds: Mapping[str, float]
                 ) -> list[dict[str, Any]]:
    """One gate `metrics.<name>` per bound: the metric at most its bound."""
    metrics = (section or {}).get("metrics") or {}
    gates = []
    for name, bound in bounds.items():
        value = metrics.get(name)
        g = gate(f"metrics.{name}", value, bound, value is not None and abs(value) <= bound)
        if name not in metrics:
            have = ", ".join(sorted(metrics)) or "none (no experiment, or no recording)"
            g["detail"] = f"the run has no metric {name!r}; its metrics: {have}"
        elif value is None:
            g["detail"] = f"{name} could not be measured in this run"
        elif abs(value) > bound:
            g["detail"] = f"{name} = {value:.4g} is beyond its bound {bound:g}"
        gates.append(g)
    return gates


def disturbance_times(section: Mapping[str, Any] | None) -> list[tuple[str, float, float]]:
    """(input or parameter, start s, end s) of each disturbance, for plots (end = start for a
    step or a sine, which last to the end)."""
    out = []
    for d in (section or {}).get("disturbances") or []:
        end = d["at_s"] + d["duration_s"] if d["signal"] == "pulse" else d["at_s"]
        out.append((d.get("input") or d["parameter"], float(d["at_s"]), float(end)))
    return out


def reference_series(section: Mapping[str, Any], plant: Mapping[str, Any],
                     times_s: np.ndarray) -> dict[str, np.ndarray]:
    """Each referenced state's target at `times_s`, for plots."""
    import numpy as np

    from hil.experiment.plan import reference_table

    kept = section.get("reference") or []
    experiment = ExperimentConfig.model_validate(
        {"reference": [{k: v for k, v in r.items() if k != "points"} for r in kept]})
    curves = {k: np.array(r["points"], dtype=np.float64) for k, r in enumerate(kept)
              if r.get("points")}
    names = list(plant["state_names"])
    table = reference_table(experiment, names, plant.get("equilibrium") or [0.0] * len(names),
                            curves=curves)
    series = table.series(times_s)
    return {ref.state: series[:, names.index(ref.state)] for ref in experiment.reference}


__all__ = ["disturbance_times", "experiment_section", "flat_metrics",
           "metric_gates", "reference_series"]
