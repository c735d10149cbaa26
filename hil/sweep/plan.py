"""A sweep's runs, each a complete config, checked before any of them runs.

Every combination of config x law x experiment x seed becomes a `PlannedRun` holding the
YAML of its config: the config file with the sweep's `set` keys, lockstep forced, the law
(name, gains, options), the experiment section with the seed applied, the seeded initial
state, and no history or HTML of its own (the sweep appends every run to the history itself;
`set: {record.html: true}` keeps each run's report.html). Each is validated as `hil run`
would (ConfigError, the experiment's names against the plant), and every law is built for
every plant in one probe process (the controller side is not imported here: imports only go
down), so a bad spec is refused before anything runs.

A seed sets `experiment.sensors.seed` to the seed, the k-th noise disturbance's `seed` to
seed * 1000 + k, and adds U(-a, a) (numpy's PCG64 seeded with the seed, over the plant's
states in order) to each state `perturb` names.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hil.sweep.spec import ConfigSpec, LawSpec, SweepSpec, SweepSpecError

if TYPE_CHECKING:
    from hil.config import Config

NOISE_SEED_STRIDE = 1000  # the k-th noise disturbance of seed s gets seed s * 1000 + k


@dataclass(frozen=True)
class PlannedRun:
    """One run of the sweep: where it goes and the config it runs."""

    index: int
    key: str  # "<config>.<law>.<experiment>.s<seed>": its folder's name
    config: str
    law: str
    experiment: str
    seed: int
    config_yaml: str
    folder: str  # absolute
    run_id: str  # "<sweep id>-<index>": the same when the sweep resumes
    history_db: str | None  # absolute: the run's config's record.history_db


@dataclass(frozen=True)
class _Plant:
    """A config as loaded with the sweep's settings, and its plant's names."""

    spec: ConfigSpec
    config: Config
    states: tuple[str, ...]
    inputs: tuple[str, ...]
    name: str


def plan_runs(spec: SweepSpec, runs_dir: Path, sweep_id: str) -> list[PlannedRun]:
    """Every run of `spec`, in a fixed order (config, law, experiment, seed), checked;
    SweepSpecError naming the first problem and its fix."""
    plants = [_load_plant(c, spec.settings) for c in spec.configs]
    runs: list[PlannedRun] = []
    for plant in plants:
        sections = [(name, _section(plant, name, section, spec))
                    for name, section in spec.experiments]
        for law in spec.laws:
            for name, section in sections:
                for seed in spec.seeds:
                    key = f"{plant.spec.label}.{law.label}.{name}.s{seed}"
                    text = _run_config(plant, law, section, seed, spec, key)
                    runs.append(PlannedRun(
                        len(runs), key, plant.spec.label, law.label, name, seed, text,
                        str((runs_dir / key).absolute()), f"{sweep_id}-{len(runs):03d}",
                        _history_db(plant.config)))
    check_laws(spec, plants)
    return runs


def _history_db(config: Config) -> str | None:
    db = config.record.history_db
    return None if db is None else str(Path(db).absolute())


def _where(plant: ConfigSpec) -> str:
    return f"config {plant.label} ({plant.path})"


def _load_plant(spec: ConfigSpec, settings: dict[str, Any]) -> _Plant:
    from hil.config import ConfigError, build_plant_model, load_config

    try:
        config = load_config(spec.path, dict(settings))
        model = build_plant_model(config)
    except ConfigError as exc:
        raise SweepSpecError(f"{_where(spec)} does not load: {exc}; fix the file (or the "
                             "sweep's set keys), or leave it out of the sweep") from None
    return _Plant(spec, config, tuple(model.state_names), tuple(model.inputs.names),
                  str(model.name))


def _section(plant: _Plant, name: str, section: dict[str, Any] | None, spec: SweepSpec
             ) -> dict[str, Any] | None:
    """The experiment section `name` for this plant (None: the config's own, or none),
    checked against the plant's names; and that the seeds change something."""
    from hil.config import ConfigError, validate_config
    from hil.experiment.plan import check_experiment

    if section is None and plant.config.experiment is not None:
        section = plant.config.experiment.model_dump(mode="json")
    where = f"experiment {name} on {_where(plant.spec)}"
    try:
        data = plant.config.model_dump(mode="json") | {"experiment": section}
        experiment = validate_config(data, where).experiment
        check_experiment(experiment, plant.name, plant.states, plant.inputs,
                         plant.config.source_dir)
    except ConfigError as exc:
        said = str(exc) if str(exc).startswith(where) else f"{where}: {exc}"
        raise SweepSpecError(f"{said}; fix the experiment's section") from None
    unknown = sorted(set(spec.perturb) - set(plant.states))
    if unknown:
        raise SweepSpecError(f"perturb: {unknown[0]!r} is not a state of plant {plant.name!r} "
                             f"({_where(plant.spec)}); its states: {', '.join(plant.states)}")
    if len(spec.seeds) > 1 and not spec.perturb and not _seeded(section):
        raise SweepSpecError(
            f"seeds {list(spec.seeds)}: {where} has nothing seeded (no sensors.noise_std, no "
            "noise disturbance) and perturb is empty, so every seed would run the same; add "
            "perturb: {STATE: HALF_WIDTH} or sensor noise, or give one seed")
    return section


def _seeded(section: dict[str, Any] | None) -> bool:
    if section is None:
        return False
    noise = (section.get("sensors") or {}).get("noise_std") or {}
    return any(noise.values()) or any(d.get("signal") == "noise"
                                      for d in section.get("disturbances") or ())


def seeded_experiment(section: dict[str, Any] | None, seed: int) -> dict[str, Any] | None:
    """The experiment section with `seed` in its sensors and noise disturbances."""
    if section is None:
        return None
    seeded = copy.deepcopy(section)
    seeded["sensors"] = dict(seeded.get("sensors") or {}, seed=seed)
    noise = [d for d in seeded.get("disturbances") or () if d.get("signal") == "noise"]
    for k, disturbance in enumerate(noise):
        disturbance["seed"] = seed * NOISE_SEED_STRIDE + k
    return seeded


def perturbed_state(initial: list[float], states: tuple[str, ...], perturb: dict[str, float],
                    seed: int) -> list[float]:
    """`initial` plus U(-a, a) on each state `perturb` names, drawn in the states' order."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return [value + float(rng.uniform(-perturb[name], perturb[name])) if name in perturb
            else value for name, value in zip(states, initial, strict=True)]


def _run_config(plant: _Plant, law: LawSpec, section: dict[str, Any] | None, seed: int,
                spec: SweepSpec, key: str) -> str:
    """The YAML of one run's config, validated."""
    from hil.config import ConfigError, dump_config, validate_config

    data = plant.config.model_dump(mode="json")
    data["run"]["mode"] = "lockstep"
    data["controller"].update(name=law.name, options=dict(law.options),
                              gains=None if law.gains is None else list(law.gains))
    data["experiment"] = seeded_experiment(section, seed)
    data["plant"]["initial_state"] = perturbed_state(
        data["plant"]["initial_state"], plant.states, spec.perturb, seed)
    data["record"]["history_db"] = None  # the sweep appends every run itself
    data["record"]["html"] = bool(spec.settings.get("record.html", False))
    try:
        return dump_config(validate_config(data, f"run {key}"))
    except ConfigError as exc:
        raise SweepSpecError(f"{exc}; fix law {law.label} or the config") from None


_LAW_PROBE = r"""
import json, sys, yaml
from hil.config import ConfigError, build_plant_model, validate_config
from controller_client.main import law_from_config
problems = []
for where, text in json.load(sys.stdin):
    try:
        config = validate_config(yaml.safe_load(text), where)
        law_from_config(config, build_plant_model(config))
        problems.append(None)
    except ConfigError as exc:
        problems.append(str(exc))
print(json.dumps(problems))
"""


def check_laws(spec: SweepSpec, plants: list[_Plant], timeout_s: float = 300.0) -> None:
    """Build every law for every plant, as hil-controller does (`law_from_config`), in one
    fresh interpreter; SweepSpecError for the first law that cannot run on a plant."""
    from hil.config import dump_config, validate_config

    pairs = []
    for plant in plants:
        for law in spec.laws:
            data = plant.config.model_dump(mode="json")
            data["controller"].update(name=law.name, options=dict(law.options),
                                      gains=None if law.gains is None else list(law.gains))
            pairs.append((f"law {law.label} on {_where(plant.spec)}",
                          dump_config(validate_config(data))))
    done = subprocess.run([sys.executable, "-c", _LAW_PROBE], input=json.dumps(pairs),
                          capture_output=True, text=True, timeout=timeout_s, check=False)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SweepSpecError(f"the laws could not be checked: {last}")
    for (where, _), problem in zip(pairs, json.loads(done.stdout.splitlines()[-1]),
                                   strict=True):
        if problem is not None:
            raise SweepSpecError(f"{where}: {problem}; fix the law (name, gains, options) or "
                                 "leave this pair out (a sweep runs every law on every config)")
