"""Damaged CURVE key files and folders: refused naming the file, what is wrong with it and
how to make good keys (`hil keygen`), by the sockets, the operator commands (exit 2) and the
processes (exit 2 naming security.keys_dir); never a ZMQError traceback."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import free_endpoint

from hil.cli import main
from hil.config import dump_config, load_config
from hil.link import security
from hil.link.transport import ControllerSocket, PlantSocket

BIN = Path(sys.executable).parent


def rewrite_key(path: Path, which: str, value: str) -> None:
    """Set the `which` ("public-key" or "secret-key") line of the certificate `path`."""
    text = path.read_text(encoding="utf-8")
    path.write_text(re.sub(rf'{which} = ".*"', f'{which} = "{value}"', text), encoding="utf-8")


Damage = Callable[[Path], Path]  # damages a keygen folder; returns the file it damaged


def short_secret(d: Path) -> Path:
    rewrite_key(d / "controller.key_secret", "secret-key", "tooShort0123456789abcdefghijkl")
    return d / "controller.key_secret"


def short_public(d: Path) -> Path:
    rewrite_key(d / "plant.key", "public-key", "abc")
    return d / "plant.key"


def non_ascii_public(d: Path) -> Path:
    rewrite_key(d / "plant.key", "public-key", "\u00e9" * 40)
    return d / "plant.key"


def outside_z85(d: Path) -> Path:
    rewrite_key(d / "controller.key_secret", "public-key", "~" * 40)
    return d / "controller.key_secret"


def no_secret(d: Path) -> Path:
    path = d / "controller.key_secret"
    path.write_text("\n".join(line for line in path.read_text().splitlines()
                              if "secret-key" not in line))
    return path


def missing(d: Path) -> Path:
    (d / "plant.key").unlink()
    return d / "plant.key"


CLIENT_DAMAGE = {"secret key of the wrong length": (short_secret, "is 30 characters long"),
                 "short public key": (short_public, "is 3 characters long"),
                 "non-ASCII public key": (non_ascii_public, "non-ASCII"),
                 "characters outside Z85": (outside_z85, "Z85 alphabet"),
                 "no secret key": (no_secret, "holds no secret-key"),
                 "missing file": (missing, "not found")}


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    security.generate(tmp_path / "keys")
    return tmp_path / "keys"


@pytest.mark.parametrize("case", CLIENT_DAMAGE)
def test_a_client_refuses_damaged_keys_naming_the_file_and_the_fix(keys: Path,
                                                                   case: str) -> None:
    damage, what = CLIENT_DAMAGE[case]
    damaged = damage(keys)
    with pytest.raises(security.CurveKeyError) as refused:
        ControllerSocket(free_endpoint(), curve_keys_dir=str(keys))
    assert str(damaged) in str(refused.value) and what in str(refused.value)
    assert "hil keygen" in str(refused.value)


@pytest.mark.parametrize("which", ["authorized/controller.key", "plant.key_secret"])
def test_the_plant_refuses_damaged_keys_naming_the_file(keys: Path, which: str) -> None:
    rewrite_key(keys / which, "public-key", "short")
    with pytest.raises(security.CurveKeyError, match=re.escape(str(keys / which))
                       + ".*5 characters long.*hil keygen"):
        PlantSocket(free_endpoint(), curve_keys_dir=str(keys))


@pytest.mark.parametrize("folder", ["", "  "])
def test_an_empty_keys_folder_name_is_refused_not_taken_as_the_current_folder(
        folder: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    security.generate(tmp_path)  # good keys in the current folder, which '' must not reach
    monkeypatch.chdir(tmp_path)
    with pytest.raises(security.CurveKeyError, match="keys folder name is empty"):
        ControllerSocket(free_endpoint(), curve_keys_dir=folder)


def test_a_file_given_as_the_keys_folder_is_named(keys: Path) -> None:
    with pytest.raises(security.CurveKeyError, match=r"plant\.key is not a folder"):
        ControllerSocket(free_endpoint(), curve_keys_dir=str(keys / "plant.key"))


@pytest.mark.parametrize("command", [["estop"], ["clear"], ["gains"], ["watch"]], ids=" ".join)
@pytest.mark.parametrize("case", ["secret key of the wrong length", "non-ASCII public key",
                                  "missing file"])
def test_operator_commands_exit_2_naming_the_damaged_key_file(
        keys: Path, command: list[str], case: str, capsys: pytest.CaptureFixture[str]) -> None:
    damage, what = CLIENT_DAMAGE[case]
    damaged = damage(keys)
    code = main([*command, "--endpoint", free_endpoint(), "--keys", str(keys)])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"--keys: CURVE key {damaged}" in err and what in err and "hil keygen" in err


@pytest.mark.parametrize(("process", "key_file"), [("hil-plant", "plant.key_secret"),
                                                    ("hil-controller", "plant.key")])
def test_the_processes_exit_2_naming_security_keys_dir_and_the_file(
        keys: Path, tmp_path: Path, process: str, key_file: str) -> None:
    damaged = keys / key_file
    rewrite_key(damaged, "public-key", "abc")
    endpoint = free_endpoint()
    config = tmp_path / "config.yaml"
    config.write_text(dump_config(load_config(None, {
        "security.curve": True, "security.keys_dir": str(keys), "plant.endpoint": endpoint,
        "controller.endpoint": endpoint})))
    done = subprocess.run([str(BIN / process), "--config", str(config), "--out",
                           str(tmp_path / "run")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert f"security.keys_dir: CURVE key {damaged}: its public-key is 3 characters long" in (
        done.stderr)
