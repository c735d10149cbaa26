"""Config: defaults and shipped files validate; every error names the file, key path and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.config import Config, ConfigError, dump_config, load_config
from hil.sweep.spec import Flags, load_spec

ROOT = Path(__file__).resolve().parents[3]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "cfg.yaml"
    p.write_text(text)
    return p


def test_defaults_are_valid_and_run_at_one_kilohertz() -> None:
    c = load_config(None)
    assert c.run.rate_hz == 1000 and c.period_ns == 1_000_000
    assert c.plant.endpoint == "tcp://127.0.0.1:5600"  # loopback only by default


def test_default_yaml_is_the_documented_closed_loop() -> None:
    c = load_config(ROOT / "configs" / "default.yaml")
    assert (c.plant.backend, c.plant.model, c.controller.name) == ("sim", "dip", "classical_smc")
    assert c.run.mode == "realtime" and c.run.rate_hz == 1000
    assert c.plant.initial_state[1:3] == [0.1, -0.05]


SHIPPED = sorted((ROOT / "configs").rglob("*.yaml"))


@pytest.mark.parametrize("path", [p for p in SHIPPED if not p.name.startswith("sweep-")],
                         ids=lambda p: p.name)
def test_every_shipped_config_validates(path: Path) -> None:
    assert isinstance(load_config(path), Config)


@pytest.mark.parametrize("path", [p for p in SHIPPED if p.name.startswith("sweep-")],
                         ids=lambda p: p.name)
def test_every_shipped_sweep_spec_loads_and_its_configs_validate(path: Path) -> None:
    spec = load_spec(str(path), Flags())  # configs/sweep-*.yaml: `hil sweep` specs
    assert spec.configs and spec.laws
    for config in spec.configs:
        assert isinstance(load_config(config.path), Config)


def test_unknown_key_names_file_path_and_allowed_keys(tmp_path: Path) -> None:
    p = write(tmp_path, "run:\n  rate_hx: 500\n")
    with pytest.raises(ConfigError) as info:
        load_config(p)
    text = str(info.value)
    assert str(p) in text and "run.rate_hx" in text
    allowed = text.split("allowed here: ", 1)[1].split("\n", 1)[0].split(", ")
    assert {"duration_s", "mode", "rate_hz"} <= set(allowed) and allowed == sorted(allowed)


def test_unknown_section_lists_the_sections(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"plnat: unknown key; allowed here: .*plant"):
        load_config(write(tmp_path, "plnat: {}\n"))


def test_bad_value_names_the_file_the_key_the_value_and_the_range(tmp_path: Path) -> None:
    path = write(tmp_path, "run:\n  rate_hz: -5\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == f"{path}: run.rate_hz: -5 is out of range: must be in [1, 20000]"


def test_bad_choice_lists_the_allowed_values(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"run.mode: Input should be 'realtime' or 'lockstep'"):
        load_config(write(tmp_path, "run:\n  mode: fast\n"))


def test_wrong_type_and_non_finite_state_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"plant\.substeps"):
        load_config(write(tmp_path, "plant:\n  substeps: many\n"))
    with pytest.raises(ConfigError, match=r"plant\.initial_state\.1: nan is not a finite number"):
        load_config(write(tmp_path, "plant:\n  initial_state: [0, .nan, 0, 0, 0, 0]\n"))


def test_endpoint_must_be_a_zeromq_address(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"plant\.endpoint: .*tcp://127\.0\.0\.1:5600"):
        load_config(write(tmp_path, "plant:\n  endpoint: localhost:5600\n"))


def test_unreadable_and_malformed_files_say_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "run: [unclosed\n"))
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(write(tmp_path, "- 1\n- 2\n"))


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    loaded = load_config(write(tmp_path, ""))
    # Only the file's folder (searched first for "module:Class" laws and models) differs.
    assert loaded.source_dir == str(tmp_path.resolve())
    assert loaded.model_copy(update={"source_dir": None}) == load_config(None)


def test_dotted_overrides_apply_and_are_validated(tmp_path: Path) -> None:
    c = load_config(write(tmp_path, "run:\n  duration_s: 2\n"), {"run.mode": "lockstep"})
    assert (c.run.duration_s, c.run.mode) == (2, "lockstep")
    with pytest.raises(ConfigError, match=r"run\.duration_s"):
        load_config(None, {"run.duration_s": 0})


def test_dumped_config_loads_back_equal(tmp_path: Path) -> None:
    c = load_config(ROOT / "configs" / "default.yaml")
    assert load_config(write(tmp_path, dump_config(c))) == c


@pytest.mark.parametrize("endpoint", ["tcp://0.0.0.0:5600", "tcp://*:5600",
                                      "tcp://192.168.1.20:5600", "tcp://eth0:5600"])
def test_a_plant_facing_the_network_is_refused_unless_allowed(tmp_path: Path,
                                                              endpoint: str) -> None:
    p = write(tmp_path, f"plant:\n  endpoint: {endpoint}\n")
    with pytest.raises(ConfigError) as info:
        load_config(p)
    assert "without authentication" in str(info.value) and "127.0.0.1" in str(info.value)
    allowed = write(tmp_path, f"plant:\n  endpoint: {endpoint}\n"
                              "  allow_unauthenticated_network: true\n")
    assert load_config(allowed).plant.endpoint == endpoint


@pytest.mark.parametrize("endpoint", ["tcp://127.0.0.1:5600", "tcp://127.0.0.2:7000",
                                      "tcp://localhost:5600", "tcp://[::1]:5600",
                                      "ipc:///tmp/hil.sock"])
def test_loopback_and_local_endpoints_need_no_permission(endpoint: str) -> None:
    assert load_config(None, {"plant.endpoint": endpoint}).plant.endpoint == endpoint


@pytest.mark.parametrize(("text", "got"), [("run:\n", "an empty section"),
                                           ("run: 5\n", "5")])
def test_an_override_into_an_empty_or_scalar_section_names_the_file_and_key(
        tmp_path: Path, text: str, got: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(path, {"run.duration_s": 2.0})
    assert str(err.value) == (
        f"{path}: run: must be a mapping of keys to set run.duration_s from the command "
        f"line, got {got}; give it keys or delete the line")


@pytest.mark.parametrize(("overrides", "shown"), [
    ({"controller": {"a\nb": 1}}, "controller.'a\\nb': unknown key"),
    ({"plant.endpoint": "tcp://0.0.0.0:5600\n"}, "plant.endpoint 'tcp://0.0.0.0:5600\\n' accepts"),
])
def test_a_key_or_endpoint_with_a_line_break_keeps_the_message_on_one_line(
        overrides: dict[str, object], shown: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides)
    assert "\n" not in str(info.value) and shown in str(info.value)


@pytest.mark.parametrize(("text", "why"), [
    ("run:\n  rate_hz: " + "9" * 5000 + "\n", "Exceeds the limit"),
    ("run: " + "[" * 5000 + "]" * 5000 + "\n", "maximum recursion depth"),
])
def test_a_file_the_yaml_reader_cannot_convert_is_a_config_error(tmp_path: Path, text: str,
                                                                 why: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=f"^{path}: cannot read as YAML: {why}"):
        load_config(path)
