"""What a sweep is: configs (plants), laws, experiments and seeds, from a YAML file and flags.

    configs: [configs/dip.yaml, {path: lab/cart.yaml, label: cart}]
    laws: [lqr, {name: classical_smc, label: smc, gains: [...], options: {...}}]
    experiments: {step: {reference: [...]}, own: null, push: experiments/push.yaml}
    seeds: [1, 2, 3]                  # or a count: 3 means 1, 2, 3
    perturb: {theta1: 0.02}           # each seed adds U(-a, a) to these initial states
    duration_s: 2                     # run.duration_s of every run
    rate_hz: 250                      # run.rate_hz of every run
    set: {record.html: true}          # any config key of every run

A path is relative to the sweep file's folder (to the working directory for a flag). An
experiment is a section as `experiment:` holds it, a YAML file holding one, or null: the
config's own. A problem is a SweepSpecError naming the key and the fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPEC_KEYS = ("configs", "laws", "experiments", "seeds", "perturb", "duration_s", "rate_hz",
             "set")
LAW_KEYS = ("name", "label", "gains", "options")
OWN_EXPERIMENT = "config"  # the experiment's name when a sweep names none: each config's own


class SweepSpecError(ValueError):
    """The sweep's spec cannot be run; the message names the key and what to do."""


@dataclass(frozen=True)
class ConfigSpec:
    label: str
    path: str  # absolute


@dataclass(frozen=True)
class LawSpec:
    label: str
    name: str
    gains: tuple[float, ...] | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SweepSpec:
    configs: tuple[ConfigSpec, ...]
    laws: tuple[LawSpec, ...]
    experiments: tuple[tuple[str, dict[str, Any] | None], ...]  # None: the config's own
    seeds: tuple[int, ...]
    perturb: dict[str, float] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)  # dotted keys of every run

    def to_json(self) -> dict[str, Any]:
        return {"configs": [{"label": c.label, "path": c.path} for c in self.configs],
                "laws": [{"label": law.label, "name": law.name, "options": law.options,
                          "gains": None if law.gains is None else list(law.gains)}
                         for law in self.laws],
                "experiments": {name: section for name, section in self.experiments},
                "seeds": list(self.seeds), "perturb": self.perturb, "set": self.settings}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SweepSpec:
        """The spec `to_json` wrote (a sweep folder's sweep-spec.json)."""
        return cls(tuple(ConfigSpec(c["label"], c["path"]) for c in data["configs"]),
                   tuple(LawSpec(law["label"], law["name"],
                                 None if law["gains"] is None else tuple(law["gains"]),
                                 law["options"]) for law in data["laws"]),
                   tuple(data["experiments"].items()), tuple(data["seeds"]),
                   data["perturb"], data["set"])


@dataclass(frozen=True)
class Flags:
    """The command line's part of a spec; each flag given replaces the file's key."""

    configs: tuple[str, ...] = ()
    laws: tuple[str, ...] = ()
    experiments: tuple[str, ...] = ()  # NAME=FILE
    seeds: str | None = None  # "3" (1..3) or "4,5,9"
    settings: dict[str, Any] = field(default_factory=dict)


def load_spec(path: str | None, flags: Flags) -> SweepSpec:
    """The spec of the file at `path` (None: flags only), with `flags` over it."""
    data, base = _read_file(path) if path is not None else ({}, Path.cwd())
    here = Path.cwd()
    configs = ([_config(c, here, "--config") for c in flags.configs] if flags.configs
               else [_config(c, base, f"configs[{i}]")
                     for i, c in enumerate(_list(data, "configs"))])
    laws = ([_law(name, "--law") for name in flags.laws] if flags.laws
            else [_law(law, f"laws[{i}]") for i, law in enumerate(_list(data, "laws"))])
    experiments = (_flag_experiments(flags.experiments, here) if flags.experiments
                   else _experiments(data.get("experiments"), base))
    seeds = (_seeds(flags.seeds, "--seeds") if flags.seeds is not None
             else _seeds(data.get("seeds", 1), "seeds"))
    settings = _settings(data)
    settings.update(flags.settings)
    if not configs:
        raise SweepSpecError("no configs: give configs: [FILE, ...] in the sweep file or "
                             "--config FILE (repeatable)")
    if not laws:
        raise SweepSpecError("no laws: give laws: [NAME, ...] in the sweep file or --law NAME "
                             "(repeatable)")
    _unique("configs", [c.label for c in configs], "give each a label: {path: ..., label: ...}")
    _unique("laws", [law.label for law in laws], "give each a label: {name: ..., label: ...}")
    return SweepSpec(tuple(configs), tuple(laws), experiments, seeds,
                     _perturb(data.get("perturb")), settings)


def _read_file(path: str) -> tuple[dict[str, Any], Path]:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise SweepSpecError(f"sweep file {path}: cannot read it: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise SweepSpecError(f"sweep file {path}: not YAML: "
                             f"{str(exc).splitlines()[0]}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SweepSpecError(f"sweep file {path}: the top level must be a mapping of "
                             f"{', '.join(SPEC_KEYS)}; got {type(data).__name__}")
    _no_unknown_key(data, SPEC_KEYS, f"sweep file {path}", "allowed:")
    return data, Path(path).resolve().parent


def _no_unknown_key(data: dict[Any, Any], keys: Sequence[str], where: str, takes: str) -> None:
    """SweepSpecError naming the first key of `data` not among `keys`, and those."""
    unknown = sorted(set(map(str, data)) - set(keys))
    if unknown:
        raise SweepSpecError(f"{where}: unknown key {unknown[0]!r}; {takes} {', '.join(keys)}")


def _list(data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key) or []
    if not isinstance(value, list):
        raise SweepSpecError(f"{key}: must be a list, got {value!r}")
    return value


def _config(item: Any, base: Path, where: str) -> ConfigSpec:
    if isinstance(item, str):
        item = {"path": item}
    if not isinstance(item, dict) or not isinstance(item.get("path"), str) \
            or set(item) - {"path", "label"}:
        raise SweepSpecError(f"{where}: give a config file's path, or {{path: FILE, label: "
                             f"NAME}}; got {item!r}")
    path = (base / item["path"]).resolve()
    if not path.is_file():
        raise SweepSpecError(f"{where}: config file {path} does not exist; fix the path "
                             "(relative to the sweep file's folder)" if where != "--config"
                             else f"--config: config file {path} does not exist")
    return ConfigSpec(_label(item.get("label", path.stem), where), str(path))


def _law(item: Any, where: str) -> LawSpec:
    if isinstance(item, str):
        item = {"name": item}
    if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
        raise SweepSpecError(f"{where}: give a law's name, or {{name: NAME, label: ..., "
                             f"gains: [...], options: {{...}}}}; got {item!r}")
    _no_unknown_key(item, LAW_KEYS, where, "a law takes")
    gains = item.get("gains")
    if gains is not None and (not isinstance(gains, list) or not all(
            isinstance(g, int | float) and not isinstance(g, bool) for g in gains)):
        raise SweepSpecError(f"{where}.gains: must be a list of numbers, got {gains!r}")
    options = item.get("options") or {}
    if not isinstance(options, dict):
        raise SweepSpecError(f"{where}.options: must be a mapping, got {options!r}")
    default_label = item["name"].rsplit(":", 1)[-1]
    return LawSpec(_label(item.get("label", default_label), where), item["name"],
                   None if gains is None else tuple(float(g) for g in gains), options)


def _label(label: Any, where: str) -> str:
    text = str(label)
    if not text or not all(ch.isalnum() or ch in "-_" for ch in text):
        raise SweepSpecError(f"{where}: label {text!r} must be letters, digits, - or _ (it "
                             "names the runs' folders); give label: NAME")
    return text


def _experiments(value: Any, base: Path) -> tuple[tuple[str, dict[str, Any] | None], ...]:
    if value is None:
        return ((OWN_EXPERIMENT, None),)
    if not isinstance(value, dict) or not value:
        raise SweepSpecError(f"experiments: must be a mapping of names to experiment "
                             f"sections (or files, or null), got {value!r}")
    return tuple((_label(name, f"experiments.{name}"),
                  _experiment(section, base, f"experiments.{name}"))
                 for name, section in value.items())


def _flag_experiments(items: tuple[str, ...], base: Path
                      ) -> tuple[tuple[str, dict[str, Any] | None], ...]:
    found = []
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise SweepSpecError(f"--experiment {item!r}: expected NAME=FILE, e.g. "
                                 "--experiment step=experiments/step.yaml")
        found.append((_label(name, "--experiment"), _experiment(path, base, "--experiment")))
    _unique("experiments", [name for name, _ in found], "give each its own NAME")
    return tuple(found)


def _experiment(section: Any, base: Path, where: str) -> dict[str, Any] | None:
    """A section as given, or read from a file (its top level, or its `experiment:` key)."""
    if section is None or isinstance(section, dict):
        return section
    if not isinstance(section, str):
        raise SweepSpecError(f"{where}: give an experiment section, a file holding one, or "
                             f"null (the config's own); got {section!r}")
    loaded, _ = _read_experiment_file(base / section, where)
    return loaded


def _read_experiment_file(path: Path, where: str) -> tuple[dict[str, Any], Path]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise SweepSpecError(f"{where}: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise SweepSpecError(f"{where}: {path} is not YAML: "
                             f"{str(exc).splitlines()[0]}") from None
    if isinstance(data, dict) and isinstance(data.get("experiment"), dict):
        data = data["experiment"]
    if not isinstance(data, dict):
        raise SweepSpecError(f"{where}: {path} must hold an experiment section (reference, "
                             f"disturbances, sensors, actuator), got {type(data).__name__}")
    return data, path.parent


def _seeds(value: Any, where: str) -> tuple[int, ...]:
    """A count n (seeds 1..n), a list, or "4,5,9"."""
    if isinstance(value, str):
        try:
            parts = [int(p) for p in value.split(",")]
        except ValueError:
            raise SweepSpecError(f"{where}: {value!r}: give a count (3: seeds 1, 2, 3) or "
                                 "seeds separated by commas (4,5,9)") from None
        value = parts[0] if len(parts) == 1 else parts
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= 10_000:
            raise SweepSpecError(f"{where}: a count of seeds must be 1 to 10000, got {value}")
        return tuple(range(1, value + 1))
    if not isinstance(value, list) or not value or not all(
            isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**32 for s in value):
        raise SweepSpecError(f"{where}: give a count or a list of seeds (integers 0 to "
                             f"2**32 - 1), got {value!r}")
    _unique(where, [str(s) for s in value], "give each seed once")
    return tuple(value)


def _perturb(value: Any) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
            isinstance(a, int | float) and not isinstance(a, bool) and a >= 0
            for a in value.values()):
        raise SweepSpecError(f"perturb: must map state names to half-widths >= 0 in the "
                             f"state's unit, e.g. {{theta1: 0.02}}; got {value!r}")
    return {str(k): float(v) for k, v in value.items()}


def _settings(data: dict[str, Any]) -> dict[str, Any]:
    settings = data.get("set") or {}
    if not isinstance(settings, dict):
        raise SweepSpecError(f"set: must map dotted config keys to values, e.g. "
                             f"{{record.html: true}}; got {settings!r}")
    settings = {str(k): v for k, v in settings.items()}
    for key, dotted in (("duration_s", "run.duration_s"), ("rate_hz", "run.rate_hz")):
        if key in data:
            settings[dotted] = data[key]
    return settings


def _unique(key: str, names: list[str], fix: str) -> None:
    seen = {name for name in names if names.count(name) > 1}
    if seen:
        raise SweepSpecError(f"{key}: {sorted(seen)[0]!r} is given twice; {fix}")
