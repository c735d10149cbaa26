"""The config's `experiment:` section against a plant: names checked, signals tabled.

A csv reference's file is read where its table is made, relative to the config file's folder
(`base_dir`, the config's `source_dir`).

`check_experiment` refuses a state or input the plant does not have, naming the key and the
names it has (the plant and the controller both call it, before anything runs).
`reference_table` is the run's target as a function of time: the plant's equilibrium with
each referenced state replaced by its signal. `disturbance_table` is what is added to each
input; None when the experiment has none.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hil.config import ConfigError, ExperimentConfig, NoiseDisturbance, ParameterDisturbance
from hil.experiment.signals import KINDS, SignalTable


def check_experiment(experiment: ExperimentConfig | None, plant: str,
                     state_names: Sequence[str], input_names: Sequence[str],
                     base_dir: str | None = None) -> None:
    """ConfigError naming the first reference, disturbance or sensor key whose state or
    input plant `plant` does not have, with the names it has, or a csv reference's file that
    cannot be read (its path relative to `base_dir`, the config file's folder)."""
    if experiment is None:
        return
    states, inputs = list(state_names), list(input_names)
    for i, ref in enumerate(experiment.reference):
        _known(f"experiment.reference[{i}].state", ref.state, states, "state", plant)
        if ref.signal == "csv":
            read_curve(f"experiment.reference[{i}].path", ref.path, base_dir)
    for i, dist in enumerate(experiment.disturbances):
        if not isinstance(dist, ParameterDisturbance):  # parameters: parameters.py
            _known(f"experiment.disturbances[{i}].input", dist.input, inputs, "input", plant)
    sensors = experiment.sensors
    for key in ("noise_std", "resolution", "counts_per_rev"):
        for name in getattr(sensors, key):
            _known(f"experiment.sensors.{key}.{name}", name, states, "state", plant)
    for key in ("deadband", "lag_s", "rate_limit_per_s"):
        for name in getattr(experiment.actuator, key):
            _known(f"experiment.actuator.{key}.{name}", name, inputs, "input", plant)
    if experiment.swingup is not None and experiment.swingup.state is not None:
        _known("experiment.swingup.state", experiment.swingup.state, states, "state", plant)


def _known(key: str, name: str, names: list[str], what: str, plant: str) -> None:
    if name not in names:
        raise ConfigError(f"{key}: {name!r} is not a{'n' if what == 'input' else ''} {what} "
                          f"of plant {plant!r}; its {what}s: {', '.join(names)}")


def reference_table(experiment: ExperimentConfig | None, state_names: Sequence[str],
                    equilibrium: Sequence[float], base_dir: str | None = None,
                    curves: dict[int, np.ndarray] | None = None) -> SignalTable:
    """The run's target: the equilibrium with each referenced state replaced by its signal
    (just the equilibrium without an experiment). A csv reference's points are read from
    its file (relative to `base_dir`), unless `curves` has them by the reference's index."""
    names = tuple(state_names)
    base = np.asarray(equilibrium, dtype=np.float64)
    rows = []
    points = dict(curves or {})
    for k, ref in enumerate(experiment.reference if experiment is not None else ()):
        i = names.index(ref.state)
        if ref.signal == "csv":
            if k not in points:
                points[k] = read_curve(f"experiment.reference[{k}].path", ref.path, base_dir)
            rows.append((KINDS["csv"], i, [ref.at_s, 1.0 if ref.hold else 0.0]))
        else:
            rows.append((KINDS[ref.signal], i, _params(ref, float(base[i]))))
    return SignalTable(names, base, False, rows, points)


def read_curve(key: str, path: str, base_dir: str | None) -> np.ndarray:
    """The points of a csv reference (k x 2: time_s, value; a header line skipped):
    ConfigError naming `key` when the file cannot be read, is not two columns of numbers,
    or its times do not increase."""
    full = Path(base_dir or ".") / path
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an empty file: said below
            data = np.genfromtxt(full, delimiter=",", dtype=np.float64)
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {full}: {exc}") from None
    except ValueError as exc:  # rows of different lengths
        raise ConfigError(f"{key}: {full} must hold rows of two numbers, time_s,value (a "
                          f"header line is allowed): {' '.join(str(exc).split())}") from None
    data = np.atleast_2d(data)
    if data.size and np.isnan(data[0]).all():
        data = data[1:]  # a header line
    if data.ndim != 2 or data.shape[1] != 2 or len(data) == 0 or not np.isfinite(data).all():
        raise ConfigError(f"{key}: {full} must hold rows of two numbers, time_s,value (a "
                          f"header line is allowed), got {data.shape[0]} rows of "
                          f"{data.shape[1] if data.ndim == 2 else 0} columns or a non-number")
    if np.any(np.diff(data[:, 0]) <= 0):
        at = int(np.nonzero(np.diff(data[:, 0]) <= 0)[0][0]) + 1
        raise ConfigError(f"{key}: {full}: times must increase, row {at + 1} of the points has "
                          f"{data[at, 0]:g} after {data[at - 1, 0]:g}")
    return np.ascontiguousarray(data)


def disturbance_table(experiment: ExperimentConfig | None,
                      input_names: Sequence[str]) -> SignalTable | None:
    """What is added to each input (one row a disturbance), or None without any (parameter
    disturbances are not added to inputs: hil/experiment/parameters.py)."""
    on_inputs = [d for d in experiment.disturbances
                 if not isinstance(d, ParameterDisturbance)] if experiment is not None else []
    if not on_inputs:
        return None
    names = tuple(input_names)
    rows = []
    for d in on_inputs:
        index = names.index(d.input)
        if d.signal == "noise":
            rows += [(KINDS["sine"], index, p) for p in noise_sines(d)]
        else:
            rows.append((KINDS[d.signal], index, _params(d, 0.0)))
    return SignalTable(names, np.zeros(len(names)), True, rows)


def noise_sines(noise: NoiseDisturbance) -> list[list[float]]:
    """Seeded band-limited noise as sine rows: `components` sines of frequencies uniform in
    (0, bandwidth_hz] and phases uniform in [0, 2 pi) (PCG64 from `seed`), each of amplitude
    std * sqrt(2 / components), so their sum has `std` RMS."""
    rng = np.random.Generator(np.random.PCG64(noise.seed))
    k = noise.components
    freqs = noise.bandwidth_hz * (1.0 - rng.random(k))  # (0, bandwidth]
    phases = 2.0 * math.pi * rng.random(k)
    amplitude = noise.std * math.sqrt(2.0 / k)
    return [[noise.at_s, 0.0, amplitude, float(f), float(ph)]
            for f, ph in zip(freqs, phases, strict=True)]


def _params(signal: Any, rest: float) -> list[float]:
    """A signal's row of parameters (hil/experiment/signals.py), `rest` standing in for an
    initial value or offset it leaves to the plant's equilibrium."""
    def given(v: float | None) -> float:
        return rest if v is None else float(v)

    kind = signal.signal
    if kind == "chirp":
        return [signal.at_s, given(signal.offset), signal.amplitude, signal.f0_hz,
                signal.f1_hz, signal.duration_s]
    if kind == "pulse":
        return [signal.at_s, signal.value, signal.duration_s]
    if kind == "step":
        return [signal.at_s, given(getattr(signal, "initial", None)), signal.value]
    if kind == "ramp":
        stop = math.nan if signal.value is None else float(signal.value)
        return [signal.at_s, given(signal.initial), signal.slope_per_s, stop]
    return [signal.at_s, given(getattr(signal, "offset", None)), signal.amplitude,
            signal.frequency_hz, math.radians(signal.phase_deg)]
