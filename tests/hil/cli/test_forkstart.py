"""`hil run` forks its plant and controller after importing them once (hil/cli/forkstart.py):
real runs, real forks, the console scripts beside them as the reference."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import free_endpoint, free_port
from runs_together import run_together

from hil.cli import forkstart
from hil.recording.recorder import read_recording

BIN = Path(sys.executable).parent
NO_HTML = ("--set", "record.html=false", "--set", "record.history_db=null")


def _children_pids(pid: int) -> dict[str, str]:
    """`pid`'s children: their names (/proc/PID/comm) and pids."""
    return {Path(f"/proc/{child}/comm").read_text().strip(): child
            for task in Path(f"/proc/{pid}/task").iterdir()
            for child in (task / "children").read_text().split()}


def _children(pid: int) -> dict[str, str]:
    """`pid`'s children: their names (/proc/PID/comm) and command lines."""
    return {name: Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            for name, child in _children_pids(pid).items()}


def _wait_for_control(out: Path, proc: subprocess.Popen[str]) -> None:
    give_up = time.monotonic() + 90
    log = out / "plant.log.jsonl"
    while not (log.exists() and "controller attached" in log.read_text()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < give_up, "no controller attached in 90 s"
        time.sleep(0.02)


@pytest.mark.parametrize("exec_env", ["", "1"], ids=["forked", "exec"])
def test_the_plant_and_controller_are_named_as_their_programs_and_stop_on_ctrl_c(
        exec_env: str, tmp_path: Path) -> None:
    """Forked, they carry `hil run`'s command line under their own names; with
    HIL_RUN_EXEC=1 they are the console scripts. Either way a Ctrl-C stops both with
    their reports."""
    out = tmp_path / "run"
    env = {**os.environ, forkstart.EXEC_ENV: exec_env}
    proc = subprocess.Popen([str(BIN / "hil"), "run", *NO_HTML, "--mode", "lockstep",
                             "--duration", "600", "--endpoint", free_endpoint(), "--out",
                             str(out)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _wait_for_control(out, proc)
        children = _children(proc.pid)
        own = Path(f"/proc/{proc.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert set(children) == {"hil-plant", "hil-controller"}, children
    if exec_env:
        assert all(f"/{name} --config" in line for name, line in children.items()), children
    else:
        assert set(children.values()) == {own}, (children, own)
    assert proc.returncode == 1, err  # cut short: a FAIL verdict, not a crash
    for name in ("plant", "controller"):
        assert json.loads((out / f"{name}.json").read_text())["signal"] == "SIGINT"
    assert "Traceback" not in err, err


def _socket_inodes(pid: int) -> set[str]:
    """The sockets process `pid` holds, as /proc names them (socket:[INODE])."""
    found = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # a descriptor closed meanwhile
            if (target := os.readlink(fd)).startswith("socket:"):
                found.add(target)
    return found


def _listening(port: int) -> str:
    """The socket listening on 127.0.0.1:`port` (/proc/net/tcp, state 0A), as socket:[INODE]."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == f"0100007F:{port:04X}" and fields[3] == "0A":
            return f"socket:[{fields[9]}]"
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


def test_a_watched_run_forks_its_programs_and_only_hil_run_holds_the_page(
        tmp_path: Path) -> None:
    """`hil run --watch` takes the page's address, forks the plant and the controller, then
    serves the page: the children are forks (`hil run`'s command line) that closed the
    listening socket, so the page's port is `hil run`'s alone."""
    out, port = tmp_path / "run", free_port()
    proc = subprocess.Popen([str(BIN / "hil"), "run", *NO_HTML, "--mode", "lockstep",
                             "--duration", "600", "--endpoint", free_endpoint(), "--out",
                             str(out), "--watch", "--watch-port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _wait_for_control(out, proc)
        children = _children(proc.pid)
        own = Path(f"/proc/{proc.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        page = _listening(port)
        holders = {name: page in _socket_inodes(int(pid)) for name, pid in
                   _children_pids(proc.pid).items()}
        assert page in _socket_inodes(proc.pid)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as answer:
            status, body = answer.status, answer.read()
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert set(children.values()) == {own} and set(children) == {"hil-plant", "hil-controller"}
    assert holders == {"hil-plant": False, "hil-controller": False}, holders
    assert status == 200 and b"<html" in body.lower()
    assert proc.returncode == 1 and "Traceback" not in err, err


def test_a_forked_run_is_the_console_scripts_run_bit_for_bit(tmp_path: Path) -> None:
    """The same lockstep config, forked and from the console scripts, side by side: the same
    recording of every tick and the same report figures that do not depend on the clock."""
    hil = str(BIN / "hil")
    runs = {"forked": tmp_path / "forked", "exec": tmp_path / "exec"}
    commands = [["env", f"{forkstart.EXEC_ENV}={'1' if name == 'exec' else ''}", hil, "run",
                 *NO_HTML, "--mode", "lockstep", "--duration", "0.5", "--controller", "lqr",
                 "--endpoint", free_endpoint(), "--out", str(out)]
                for name, out in runs.items()]
    done = run_together(commands, tmp_path, dict(os.environ))
    codes = [d.returncode for d in done]
    assert codes[0] == codes[1] and codes[0] in (0, 1), [d.stderr for d in done]  # a verdict
    forked, execd = (read_recording(out / "plant.rec") for out in runs.values())
    assert forked.rows == execd.rows == 501 and forked.keys() == execd.keys()
    clocked = {"t_ns", "lateness_ns", "round_trip_ns"}
    for column in forked:
        if column not in clocked:
            assert np.array_equal(forked[column], execd[column]), column
    reports = [json.loads((out / "report.json").read_text()) for out in runs.values()]
    assert reports[0]["final_state"] == reports[1]["final_state"]
    assert reports[0]["verdict"] == reports[1]["verdict"]
    assert reports[0]["gates"] == reports[1]["gates"]  # lockstep: none of them on the clock


def _python(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)


def test_a_forked_programs_usage_error_is_its_exit_status(tmp_path: Path) -> None:
    done = _python("""
        from hil.cli import forkstart
        forkstart.preload(["hil-plant"])
        child = forkstart.fork_program("hil-plant", ["--no-such-option"], {})
        print(child.wait(), child.poll())
        """, tmp_path)
    assert done.stdout.split() == ["2", "2"], done.stderr
    assert "hil-plant: error: unrecognized arguments: --no-such-option" in done.stderr


def test_a_stop_at_the_forks_first_instant_is_kept_and_the_report_written(
        tmp_path: Path) -> None:
    """SIGINT sent the moment fork returns, before the child has taken over its signals:
    held across the fork, then noted, so the plant stops cleanly with plant.json."""
    done = _python(f"""
        import signal
        from hil.cli import forkstart
        forkstart.preload(["hil-plant"])
        child = forkstart.fork_program(
            "hil-plant", ["--out", "out", "--endpoint", "{free_endpoint()}"], {{}})
        child.send_signal(signal.SIGINT)
        print(child.wait(timeout=90))
        """, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr
    report = json.loads((tmp_path / "out" / "plant.json").read_text())
    assert report["signal"] == "SIGINT" and report["exit_code"] == int(done.stdout)


def test_it_forks_only_from_one_thread_and_not_when_asked_to_exec(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(forkstart.EXEC_ENV, "1")
    assert forkstart.can_fork() is False
    monkeypatch.delenv(forkstart.EXEC_ENV)
    alone = threading.active_count() == 1  # xdist runs its own threads in its workers
    assert forkstart.can_fork() is alone
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert forkstart.can_fork() is False
    finally:
        stop.set()
        other.join()
