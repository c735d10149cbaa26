"""`hil run --set KEY=VALUE`: one config key from the command line, VALUE read as YAML."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from hil.cli.run import parse_settings

HIL = [sys.executable, "-m", "hil.cli"]


def test_values_are_yaml_and_keys_dotted() -> None:
    assert parse_settings(["record.html=false", "record.history_db=null",
                           "controller.gains=[2, 16, 42.5]", "run.rate_hz=2000",
                           "controller.name=lqr", "plant.endpoint=tcp://127.0.0.1:5600"]) == {
        "record.html": False, "record.history_db": None, "controller.gains": [2, 16, 42.5],
        "run.rate_hz": 2000, "controller.name": "lqr",
        "plant.endpoint": "tcp://127.0.0.1:5600"}


@pytest.mark.parametrize(("item", "message"), [
    ("record.html", "--set 'record.html': expected KEY=VALUE"),
    ("=1", "--set '=1': expected KEY=VALUE"),
    ("record..html=1", "--set 'record..html=1': expected KEY=VALUE"),
    ("controller.gains=[1, 2", "--set controller.gains: '[1, 2' is not a YAML value"),
    ("controller.gains=" + "[" * 3000 + "]" * 3000,
     "--set controller.gains: the value is nested too deep"),
])
def test_a_malformed_setting_is_named(item: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("[", r"\[")):
        parse_settings([item])


@pytest.mark.parametrize(("item", "message"), [
    ("record.htm=false", "record.htm: unknown key; allowed here: enabled"),
    ("run.rate_hz=fast", "run.rate_hz"),
    ("record.html", "expected KEY=VALUE"),
])
def test_hil_run_refuses_a_bad_setting_before_anything_starts(tmp_path: Path, item: str,
                                                              message: str) -> None:
    done = subprocess.run([*HIL, "run", "--set", item, "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert message in done.stderr
    assert not (tmp_path / "run" / "plant.json").exists()
