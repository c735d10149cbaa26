"""`controller.command` / `hil run --controller-cmd`: a program of your own in place of
hil-controller. Its command line is checked before anything starts, it learns the run from
HIL_* variables, and its real exit status is the run's, whatever its controller.json says."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import NO_HTML, free_endpoint

from hil.app.foreign_controller import (
    ControllerCommandError,
    controller_argv,
    controller_env,
)
from hil.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]
HIL = [sys.executable, "-m", "hil.cli"]


def test_a_command_line_is_split_as_a_shell_would_and_its_program_found() -> None:
    assert controller_argv("sh -c 'exit 0' 'a b'") == ["sh", "-c", "exit 0", "a b"]


@pytest.mark.parametrize(("command", "says"), [
    ("no-such-controller-program --rate 5", "no-such-controller-program: not found on PATH"),
    ("./clients/c/build/nope", "no such executable file"),
    ("'unclosed", "is not a command line"),
])
def test_a_command_that_cannot_start_is_refused_naming_it(command: str, says: str) -> None:
    with pytest.raises(ControllerCommandError, match=re.escape(says)):
        controller_argv(command)


@pytest.mark.parametrize("bad", ["", "   ", "'x"])
def test_the_config_key_refuses_an_empty_or_broken_command(bad: str) -> None:
    with pytest.raises(ConfigError, match=r"controller\.command"):
        load_config(None, {"controller.command": bad})


def test_the_environment_carries_the_run(tmp_path: Path) -> None:
    config = load_config(None, {"run.mode": "lockstep", "controller.endpoint":
                                "tcp://127.0.0.1:5999", "plant.endpoint": "tcp://127.0.0.1:5999",
                                "controller.plant_timeout_ms": 750,
                                "controller.lockstep_plant_timeout_ms": 1250})
    env = controller_env(config, tmp_path / "out", "run-7", tmp_path / "out" / "config.yaml")
    assert env["HIL_ENDPOINT"] == "tcp://127.0.0.1:5999" and env["HIL_MODE"] == "lockstep"
    assert env["HIL_OUT"] == str((tmp_path / "out").absolute()) and env["HIL_RUN_ID"] == "run-7"
    # the plant's silence it may wait out: the lockstep one in lockstep, else the realtime one
    assert env["HIL_TRANSPORT"] == "zmq" and float(env["HIL_PLANT_TIMEOUT_MS"]) == 1250
    realtime = config.model_copy(update={"run": config.run.model_copy(update={"mode": "realtime"})})
    assert float(controller_env(realtime, tmp_path / "out", "run-7", tmp_path / "c.yaml")[
        "HIL_PLANT_TIMEOUT_MS"]) == 750
    # the plant's start-up on top of the handshake's own timeout (the module's docstring)
    assert float(env["HIL_CONNECT_TIMEOUT_S"]) == config.controller.connect_timeout_s + \
        config.plant.attach_timeout_s
    assert "HIL_KEYS_DIR" not in env and env["HIL_RECORD"] == "1"
    assert env["HIL_CLEAR_ON_ATTACH"] == "0"
    # hil-controller's real-time hygiene: SCHED_FIFO in realtime runs only
    assert (env["HIL_SCHED_PRIORITY"], env["HIL_LOCK_MEMORY"], env["HIL_CPU"]) == ("0", "1", "-1")
    realtime = load_config(None, {"realtime.controller_cpu": 1, "realtime.sched_priority": 70})
    assert (controller_env(realtime, tmp_path, "r", tmp_path / "c.yaml")["HIL_SCHED_PRIORITY"],
            controller_env(realtime, tmp_path, "r", tmp_path / "c.yaml")["HIL_CPU"]) == ("70", "1")
    curve = load_config(None, {"security.curve": True, "security.keys_dir": str(tmp_path)})
    assert controller_env(curve, tmp_path, "r", tmp_path / "c.yaml")["HIL_KEYS_DIR"] == \
        str(tmp_path)


def _run(*options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HIL, "run", *NO_HTML, "--endpoint", free_endpoint(), *options],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_hil_run_refuses_a_missing_program_before_starting_anything(tmp_path: Path) -> None:
    done = _run("--controller-cmd", "no-such-controller-program", "--out", str(tmp_path / "r"))
    assert done.returncode == 2
    assert "no-such-controller-program: not found on PATH" in done.stderr
    assert not (tmp_path / "r").exists()  # no folder, no plant


def test_hil_run_refuses_a_law_and_a_program_at_once(tmp_path: Path) -> None:
    done = _run("--controller", "lqr", "--controller-cmd", "true", "--out", str(tmp_path))
    assert done.returncode == 2 and "give one of them" in done.stderr


@pytest.mark.slow
def test_the_programs_exit_status_is_the_runs_whatever_its_report_says(tmp_path: Path) -> None:
    # A "controller" that writes a report claiming success into HIL_OUT, then fails.
    script = 'printf \'{"process": "controller", "exit_code": 0, "end_reason": "%s"}\' ' \
             '"$HIL_MODE" > "$HIL_OUT/controller.json"; exit 3'
    out = tmp_path / "run"
    done = _run("--mode", "lockstep", "--controller-cmd", f"sh -c {shlex.quote(script)}",
                "--set", "plant.attach_timeout_s=20", "--out", str(out))
    assert done.returncode == 1, done.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["exit_codes"]["controller"] == 3 and report["verdict"] == "FAIL"
    assert report["controller_end_reason"] == "lockstep"  # it saw HIL_MODE, wrote to HIL_OUT
    assert json.loads((out / "controller.json").read_text())["exit_code"] == 0


def test_a_program_that_cannot_be_executed_stops_the_plant_it_started_with(tmp_path: Path
                                                                           ) -> None:
    program = tmp_path / "not-a-program"
    program.write_text("neither ELF nor a script with #!\n")
    program.chmod(0o755)  # found and executable, so it passes the check; exec refuses it
    done = _run("--controller-cmd", str(program), "--out", str(tmp_path / "r"))
    assert done.returncode == 2
    assert "controller.command: cannot start it" in done.stderr and "Exec format" in done.stderr
    assert _processes_naming(str(tmp_path / "r")) == []  # the plant was stopped, not orphaned


def _processes_naming(text: str) -> list[str]:
    """The command lines of this machine's processes that hold `text`."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # it ended meanwhile
            continue
        if text in args:
            found.append(args)
    return found
