"""Every number of the config has a range, checked at load: each key loads at its bounds and
is refused just beyond them (exit 2 from `hil run --set`, one line naming the key, the value
and the range). The cases are made from the schema's table, so a key added to it is tested."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import pytest
import yaml
from config_kit import TABLE, bound_values, override
from pydantic import BaseModel

from controller_client.loop import LoopSettings
from hil.cli import main as hil_main
from hil.config import CONTROLLER_GUARD, Config, ConfigError, load_config
from hil.config_ranges import Range, numeric_fields, ranges_markdown, show_number

CASES = [pytest.param(path, side, id=f"{path}-{side}")
         for path, field in TABLE.items() if field.range is not None
         for side in ("low", "high")]


@pytest.fixture
def unmakeable_out(tmp_path: Path) -> str:
    """A run folder under a file: should a config that ought to be refused load, `hil run`
    stops at the folder (after the config) before it starts any process."""
    (tmp_path / "a-file").write_text("")
    return str(tmp_path / "a-file" / "run")


def hil_run_set(capsys: pytest.CaptureFixture[str], out: str, key: str, text: str
                ) -> tuple[int, str]:
    """`hil run --set key=text` in this process (a refused config starts nothing): its exit
    status and its stderr."""
    code = hil_main(["run", "--out", out, "--set", f"{key}={text}"])
    return code, capsys.readouterr().err


def as_yaml(value: Any) -> str:
    return str(yaml.safe_dump(value, default_flow_style=True)).strip().removesuffix("...").strip()


def test_every_numeric_field_of_the_schema_has_a_range() -> None:
    assert [path for path, field in TABLE.items() if field.range is None] == []
    # The walk reaches numbers in nested sections, optional values, lists and maps.
    assert {"safety.deadline.window_ms", "realtime.plant_cpu", "plant.initial_state[]",
            "gates.weights.*", "tuning.bounds.*[]", "tuning.starts[][]",
            "faults.sensor_noise_std", "faults.sensor_noise_std[]"} <= set(TABLE)


def test_the_walk_finds_a_number_without_a_range() -> None:
    class Section(BaseModel):
        count: int = 0
        ranged: Annotated[float, Range(0, 1)] = 0.0

    class Schema(BaseModel):
        section: Section = Section()
        values: list[float] | None = None
        named: dict[str, Annotated[int, Range(0, 9)]] = {}
        flag: bool = False
        name: str = ""

    table = numeric_fields(Schema)
    assert {path: (f.kind, f.range) for path, f in table.items()} == {
        "section.count": (int, None), "section.ranged": (float, Range(0, 1)),
        "values[]": (float, None), "named.*": (int, Range(0, 9))}


@pytest.mark.parametrize(("path", "side"), CASES)
def test_each_key_loads_at_its_bound(path: str, side: str) -> None:
    inside, _ = bound_values(TABLE[path], side)
    key, value = override(path, inside)
    loaded = load_config(None, {key: value})
    for part in key.split("."):
        loaded = getattr(loaded, part)
    assert loaded == value


@pytest.mark.parametrize(("path", "side"), CASES)
def test_each_key_just_beyond_its_bound_is_refused_by_hil_run(
        capsys: pytest.CaptureFixture[str], unmakeable_out: str, path: str, side: str) -> None:
    field = TABLE[path]
    _, beyond = bound_values(field, side)
    key, value = override(path, beyond)
    code, err = hil_run_set(capsys, unmakeable_out, key, as_yaml(value))
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("hil run: <defaults>: ")
    assert f"{key}" in err and f"{show_number(beyond)} is out of range" in err
    assert f"must be in {field.range}" in err


@pytest.mark.parametrize(("key", "text", "shown"), [
    ("plant.lockstep_watchdog_timeout_ms", "1e12", "1000000000000"),
    ("plant.attach_timeout_s", "1e300", "1e+300"),
    ("controller.plant_timeout_ms", "1e300", "1e+300"),
    ("controller.lockstep_plant_timeout_ms", "1e300", "1e+300"),
    ("controller.connect_timeout_s", "1e300", "1e+300"),
    ("safety.deadline.window_ms", "1e12", "1000000000000"),
    ("realtime.controller_cpu", "18446744073709551616", "18446744073709551616"),
    ("plant.watchdog_timeout_ms", "1e12", "1000000000000"),
    ("gates.upright_tolerance_rad", "1e300", "1e+300"),
])
def test_the_values_the_run_died_on_are_refused_at_load(
        capsys: pytest.CaptureFixture[str], unmakeable_out: str, key: str, text: str,
        shown: str) -> None:
    code, err = hil_run_set(capsys, unmakeable_out, key, text)
    assert code == 2
    assert err.startswith(f"hil run: <defaults>: {key}: {shown} is out of range: must be in [")


@pytest.mark.parametrize("text", [".nan", ".inf", "-.inf", "nan", "inf", "1e400"])
def test_non_finite_numbers_are_refused_everywhere(text: str) -> None:
    for path, field in TABLE.items():
        if field.kind is float:
            key, value = override(path, yaml.safe_load(text))
            with pytest.raises(ConfigError, match=rf"{key}.*is not a finite number: must be in"):
                load_config(None, {key: value})


def test_true_or_false_is_not_a_number() -> None:
    with pytest.raises(ConfigError, match=r"run\.rate_hz: must be a number, not true or false"):
        load_config(None, {"run.rate_hz": True})
    with pytest.raises(ConfigError, match=r"faults\.seed: must be a number, not true or false"):
        load_config(None, {"faults.seed": False})


def test_an_integer_too_long_to_print_is_named_by_its_size() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, {"realtime.plant_cpu": 10**5000, "run.rate_hz": 10**5000})
    assert str(info.value) == (
        "<defaults>: 2 problems: run.rate_hz: Input should be a valid number (got an integer "
        "of 16610 bits); realtime.plant_cpu: an integer of 16610 bits is out of range: must "
        "be in [0, 1023] (Linux's CPU_SETSIZE is 1024)")


@pytest.mark.parametrize("phase", [0.85, 0.9, 0.99])
def test_a_phase_offset_that_leaves_the_law_no_time_is_refused_naming_the_guard(
        capsys: pytest.CaptureFixture[str], unmakeable_out: str, phase: float) -> None:
    code, err = hil_run_set(capsys, unmakeable_out, "controller.phase_offset", str(phase))
    assert code == 2
    assert (f"controller.phase_offset: {phase} is out of range: must be in [0, 0.85) "
            "(phase_offset + the controller's guard 0.15, the share of a period it keeps free "
            "before the plant's next tick, must be < 1)") in err


def test_every_phase_offset_that_loads_leaves_the_loop_a_budget() -> None:
    guard = next(f.default for f in dataclasses.fields(LoopSettings) if f.name == "guard")
    assert guard == CONTROLLER_GUARD
    last = math.nextafter(1 - CONTROLLER_GUARD, 0)
    assert load_config(None, {"controller.phase_offset": last}).controller.phase_offset == last
    # The loop's own budget, as controller_client.main.law_timing computes it, is left; the
    # first phase refused is the first whose sum with the guard reaches a whole period.
    assert 1.0 - last - guard > 0 and last + guard < 1
    assert (1 - CONTROLLER_GUARD) + guard >= 1


@pytest.mark.parametrize(("module", "text", "key"), [
    ("plant_server.main", "safety:\n  deadline:\n    window_ms: 1.0e+12\n",
     "safety.deadline.window_ms"),
    ("controller_client.main", "controller:\n  plant_timeout_ms: 1.0e+300\n",
     "controller.plant_timeout_ms"),
])
def test_the_processes_refuse_an_out_of_range_config_file_with_one_line(
        tmp_path: Path, module: str, text: str, key: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(text)
    done = subprocess.run([sys.executable, "-m", module, "--config", str(config),
                           "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=60, check=False)
    name = module.split(".")[0].split("_")[0]
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"hil-{name}: {config}: {key}: ")
    assert "is out of range: must be in [1, " in done.stderr


def test_the_safety_doc_lists_the_schemas_ranges() -> None:
    doc = (Path(__file__).resolve().parents[3] / "docs" / "safety.md").read_text()
    assert ranges_markdown(Config) in doc, (
        "docs/safety.md's 'Config ranges' is not the schema's: replace it with the output of "
        "`python -m hil.config_ranges`")
