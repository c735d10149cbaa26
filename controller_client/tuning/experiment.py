"""The lab's experiment in the tuning: what each candidate is simulated under, and measured by.

A config's `experiment:` section (docs/experiments.md) reaches the closed loop of batch.py as
the run reaches it (`ExperimentSpec`, plain arrays a Dask task carries), through
hil.experiment's own compiled functions:

- the **target** (`plan.reference_table`, evaluated by `signals.evaluate` at each control's
  time, k periods as in a lockstep run): a law that takes it gets it (as the controller
  decides, `controller_client.law.takes_target`), and the cost's figures measure the error
  from it;
- the **sensors** (`sensors._sense`): what the law sees of the state, noise seeded per draw
  (`sensor_seed`: draw k of a stream has a PCG64 stream of its own, drawn from the config's
  `sensors.seed`, the tuning's seed, the stream and k), one draw of every state per control,
  as `Sensors.sense` draws them;
- the **actuators** (`actuator._actuate`) and the **disturbances** (`plan.disturbance_table`)
  between the held control and the model, stepped at the start of each integration step as
  the simulated plant steps them (plant_server/backends/sim.py); the actuators' input delay
  (`delay_steps`) as the plant shifts each control: the control of period k acts from period
  k + delay_steps, zero before (`delayed`).

The **metrics** of each evaluation are the report's (`measure`: hil/reporting/experiment.py
measures the trajectory with hil/experiment/metrics.py, names `<state>.<metric>`,
`<input>.<metric>` and, with `experiment.swingup`, `swingup.<metric>`), one column each after
batch.py's figures (`ExperimentSpec.names`). Parameter disturbances are not simulated (the
command says so). The cost
(`tuning.cost`) weighs their magnitudes; a name the experiment cannot give is refused
naming those it can (`check_cost`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

from hil.config import ExperimentConfig
from hil.experiment.actuator import _actuate
from hil.experiment.plan import disturbance_table, reference_table
from hil.experiment.sensors import Sensors, _sense
from hil.experiment.signals import evaluate
from hil.reporting.experiment import _state_metrics, _swingup, flat_metrics

# Flags of ExperimentSpec.flags: whether each part is on, the sensors' delay (samples) and
# the actuators' input delay (whole periods).
F_REFERENCE, F_SENSE, F_NOISE, F_ACTUATOR, F_DISTURBANCE, F_DELAY, F_INPUT_DELAY = range(7)
FLAGS = 7
# How a compiled law gets the target: not at all, the state shifted by it (KernelLaw.compute:
# the masked entries; the DIP's LQR: all of them), or in its scratch row 1 (the LQR on a plant
# model: lqr_plant_track_kernel).
TARGET_NONE, TARGET_SHIFT, TARGET_SCRATCH, TARGET_PYTHON = range(4)


class CostError(ValueError):
    """tuning.cost names a metric the experiment cannot give (the message lists those it can)."""


@dataclass(frozen=True)
class ExperimentSpec:
    """An experiment as the closed loop runs it, and how its metrics are measured."""

    config: dict[str, Any]  # the experiment section (JSON), for the report's measurement
    state_names: tuple[str, ...]
    input_names: tuple[str, ...]
    wraps: tuple[str, ...]
    reference: np.ndarray  # the packed reference table (signals.SignalTable.table)
    disturbance: np.ndarray  # the packed disturbance table (zeros without disturbances)
    sensing: np.ndarray  # (3, n): noise (overwritten per control), std, resolution
    actuator: np.ndarray  # (3, m): deadband, lag_s, rate_limit_per_s
    flags: np.ndarray  # int64 (FLAGS,)
    sensor_seed: int
    period_ns: int
    recorded: np.ndarray  # int64: the referenced states, recorded for the metrics
    names: tuple[str, ...]  # the metrics, in column order

    @property
    def referenced(self) -> bool:
        return bool(self.flags[F_REFERENCE])


def experiment_spec(experiment: Mapping[str, Any], model: Any, rate_hz: float,
                    base_dir: str | None = None) -> ExperimentSpec:
    """The spec of `experiment` (a config's section, JSON) on `model` (its names,
    equilibrium, wraps, inputs)."""
    config = ExperimentConfig.model_validate(dict(experiment))
    states, inputs = tuple(model.state_names), tuple(model.inputs.names)
    reference = reference_table(config, states, model.equilibrium, base_dir)
    disturbance = disturbance_table(config, inputs)
    sensors = Sensors(config.sensors, states)
    a = config.actuator
    actuator = np.array([[a.deadband.get(n, 0.0) for n in inputs],
                         [a.lag_s.get(n, 0.0) for n in inputs],
                         [a.rate_limit_per_s.get(n, 0.0) for n in inputs]], dtype=np.float64)
    flags = np.zeros(FLAGS, dtype=np.int64)
    flags[F_REFERENCE] = bool(config.reference)
    flags[F_SENSE] = sensors.active
    flags[F_NOISE] = bool(np.any(sensors.std > 0.0))
    flags[F_ACTUATOR] = bool(np.any(actuator > 0.0))
    flags[F_DISTURBANCE] = disturbance is not None
    flags[F_DELAY] = sensors.delay
    flags[F_INPUT_DELAY] = getattr(a, "delay_steps", 0)
    dist = disturbance.table if disturbance is not None else np.zeros((1, len(inputs) + 1))
    recorded = np.array(measured_states(config, states, spec_wraps(model)), dtype=np.int64)
    spec = ExperimentSpec(
        config.model_dump(mode="json"), states, inputs, spec_wraps(model),
        reference.table, dist, np.array([np.zeros(len(states)), sensors.std,
                                         sensors.resolution]), actuator, flags,
        int(config.sensors.seed), round(1e9 / rate_hz), recorded, ())
    return _with_names(spec)


def spec_wraps(model: Any) -> tuple[str, ...]:
    return tuple(getattr(model, "wraps", ()))


def measured_states(config: ExperimentConfig, states: tuple[str, ...],
                    wraps: tuple[str, ...]) -> list[int]:
    """The states the metrics read: each referenced one, and the swing-up metric's
    (`experiment.swingup.state`, else the first that wraps, as the report takes it)."""
    indices = [states.index(r.state) for r in config.reference]
    swingup = getattr(config, "swingup", None)
    if swingup is not None:
        state = swingup.state or (wraps[0] if wraps else None)
        if state is not None and states.index(state) not in indices:
            indices.append(states.index(state))
    return indices


def _with_names(spec: ExperimentSpec) -> ExperimentSpec:
    """`spec` with its metric names: those the report gives for this experiment (measured
    on a trajectory of two samples, so the names are the report's own)."""
    import dataclasses

    t = np.array([0.0, 1.0])
    columns = np.zeros((2, len(spec.recorded) + len(spec.input_names)))
    return dataclasses.replace(spec, names=tuple(sorted(measure(spec, t, columns))))


def measure(spec: ExperimentSpec, t_s: np.ndarray, columns: np.ndarray
            ) -> dict[str, float | None]:
    """The report's metrics (hil/reporting/experiment.py, `experiment.metrics`) of one
    evaluation: `columns` holds, per sample at `t_s`, the referenced states (`recorded`)
    then the inputs."""
    from hil.experiment import metrics as m

    config = ExperimentConfig.model_validate(spec.config)
    r = len(spec.recorded)
    rec = {"sim_time_s": t_s}
    rec.update({spec.state_names[i]: columns[:, j] for j, i in enumerate(spec.recorded)})
    table = reference_table(config, spec.state_names, spec_equilibrium(spec))
    plant = {"state_names": list(spec.state_names), "wraps": list(spec.wraps)}
    targets = table.series(t_s)
    section: dict[str, Any] = {
        "states": _state_metrics(config, plant, rec, targets),  # type: ignore[arg-type]
        "inputs": {name: m.effort(t_s, columns[:, r + j])
                   for j, name in enumerate(spec.input_names)}}
    if getattr(config, "swingup", None) is not None:
        section["swingup"] = _swingup(config, plant, rec, targets)  # type: ignore[arg-type]
    return flat_metrics(section)


def spec_equilibrium(spec: ExperimentSpec) -> np.ndarray:
    """The reference table's base: the plant's equilibrium."""
    return spec.reference[0, :len(spec.state_names)]


def check_cost(cost: Mapping[str, float], spec: ExperimentSpec | None) -> None:
    """CostError unless every name of `cost` is a metric of the experiment, and each weight
    a finite number >= 0."""
    have = spec.names if spec is not None else ()
    for name, weight in cost.items():
        if name not in have:
            listed = ", ".join(have) if have else "none: the config has no experiment section"
            raise CostError(f"tuning.cost: {name!r} is not a metric of this experiment; the "
                            f"metrics it gives: {listed}")
        if not (math.isfinite(weight) and weight >= 0.0):
            raise CostError(f"tuning.cost.{name} must be a weight >= 0, got {weight}")


def sensor_seed(spec: ExperimentSpec, seed: int, stream: int, draw: int) -> int:
    """The seed of draw `draw`'s sensor noise (a u64, as `sensors.seed`)."""
    sequence = np.random.SeedSequence([spec.sensor_seed, seed, stream, draw])
    return int(sequence.generate_state(1, np.uint64)[0])


def sensor_noise(spec: ExperimentSpec | None, seed: int, stream: int, draws: int,
                 steps: int, n: int) -> np.ndarray:
    """(draws, steps, n) standard normal draws of each draw's sensors, as `Sensors.sense`
    draws them from PCG64(`sensor_seed`) (one of every state per control); (draws, 0, n)
    when the sensors add no noise."""
    if spec is None or not spec.flags[F_NOISE]:
        return np.zeros((draws, 0, n))
    return np.stack([np.random.Generator(np.random.PCG64(sensor_seed(spec, seed, stream, k)))
                     .standard_normal((steps, n)) for k in range(draws)])


def empty_arrays(n: int, m: int) -> tuple[np.ndarray, ...]:
    """The experiment arrays of a run without one: (reference, disturbance, sensing,
    actuator, flags, recorded), all parts off."""
    return (np.zeros((1, n + 1)), np.zeros((1, m + 1)), np.zeros((3, n)), np.zeros((3, m)),
            np.zeros(FLAGS, dtype=np.int64), np.zeros(0, dtype=np.int64))


def spec_arrays(spec: ExperimentSpec | None, n: int, m: int) -> tuple[np.ndarray, ...]:
    """The arrays of `spec` the compiled loop reads (empty_arrays' order)."""
    if spec is None:
        return empty_arrays(n, m)
    return (spec.reference, spec.disturbance, spec.sensing, spec.actuator, spec.flags,
            spec.recorded)


def metric_columns(spec: ExperimentSpec, t_s: np.ndarray, traj: np.ndarray,
                   ok: np.ndarray, out: np.ndarray) -> None:
    """out[..., j] = metric j (spec.names) of each evaluation whose `ok` is True (NaN for
    the others, and for a metric it could not measure); traj[..., T, columns]."""
    out[...] = np.nan
    for index in zip(*np.nonzero(ok), strict=True):
        values = measure(spec, t_s, traj[index])
        out[index] = [np.nan if values[k] is None else values[k] for k in spec.names]


# --- compiled parts of the closed loop (batch.py) ---------------------------------------------


@njit(nogil=True, cache=True)
def see(x, seen, target, k, flags, coeffs, noise, ring, mode, mask):
    """`seen` = what the law sees of `x` at control k: the sensors' output (noise row
    noise[k]), shifted by `target` where `mask` says for a TARGET_SHIFT law."""
    seen[:] = x
    if flags[F_SENSE] != 0:
        if noise.shape[0] > 0:
            coeffs[0, :] = noise[k]
        _sense(seen, coeffs, ring, k)
    if mode == TARGET_SHIFT:
        for i in range(seen.shape[0]):
            if mask[i] != 0.0:
                seen[i] -= target[i]


@njit(nogil=True, cache=True)
def plant_input(u, out, t_s, dt_s, flags, disturbance, actuator, act_out, dist):
    """`out` = what the model gets over the step of `dt_s` starting at run time `t_s`: the
    actuators' output for `u` held over it plus the disturbances at `t_s` (sim.py)."""
    if flags[F_ACTUATOR] != 0:
        _actuate(u, actuator, act_out, dt_s)
        out[:] = act_out
    else:
        out[:] = u
    if flags[F_DISTURBANCE] != 0:
        evaluate(t_s, disturbance, dist)
        for i in range(out.shape[0]):
            out[i] += dist[i]


@njit(nogil=True, cache=True)
def delayed(line, k, u, act, act_prev):
    """The actuators' input delay (rows of `line`: the delay + 1 last controls): `act` = the
    control of period k - delay (zero before the first), `act_prev` the previous `act`."""
    d = line.shape[0] - 1
    line[k % (d + 1)] = u
    act_prev[:] = act
    if k >= d:
        act[:] = line[(k - d) % (d + 1)]


@njit(nogil=True, cache=True)
def target_at(k, period_ns, flags, reference, target):
    """The run's target at control k (time k periods, as the lockstep controller's t)."""
    if flags[F_REFERENCE] != 0:
        evaluate(float(k * period_ns) * 1e-9, reference, target)
