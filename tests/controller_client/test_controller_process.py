"""hil-controller's defects, end to end through real processes (`hil run`, `hil gains`,
hil-controller) on loopback: a gain change the law refuses, what a law returns on both
transports, an error escaping the loop, gains a law cannot be built with, a plant the link
cannot carry."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import NO_HTML, assert_passed_but_timing, free_endpoint

ROOT = Path(__file__).resolve().parents[2]
HIL = [sys.executable, "-m", "hil.cli"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
# Not about the watchdog: a loaded 2-core machine stalls both loops for 20 ms at times.
PATIENT_WATCHDOG = ("--set", "plant.watchdog_timeout_ms=250")


def hil(cwd: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HIL, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=ENV)


def reports(out: Path) -> tuple[dict, dict, dict]:
    """(report.json, plant.json, controller.json) of a run folder."""
    return tuple(json.loads((out / name).read_text())  # type: ignore[return-value]
                 for name in ("report.json", "plant.json", "controller.json"))


def own_law(folder: Path, body: str) -> str:
    """A law class `Own` with `compute` returning `body` (an expression of state), in own.py
    beside own.yaml, a config that names it; the config's file name."""
    config(folder, "own:Own")
    (folder / "own.py").write_text(
        "import numpy as np\n\n\n"
        "class Own:\n"
        "    def __init__(self, gains, **context):\n"
        "        self.k = np.array([31.62, -633.6, 945.1, 46.97, -8.545, 131.2])\n"
        "        self.n = 0\n\n"
        "    def reset(self):\n"
        "        self.n = 0  # after the warm-up: n counts this run's computes\n\n"
        "    def compute(self, state, t):\n"
        "        self.n += 1\n"
        f"        return {body}\n")
    return "own.yaml"


def config(folder: Path, law: str) -> str:
    (folder / "own.yaml").write_text(f"controller: {{name: '{law}', connect_timeout_s: 60}}\n")
    return "own.yaml"


@pytest.mark.realtime
def test_a_gain_change_the_solver_refuses_is_answered_and_the_run_goes_on(
        tmp_path: Path) -> None:
    endpoint = free_endpoint()
    proc = subprocess.Popen([*HIL, "run", *NO_HTML, "--controller", "lqr", "--duration", "12",
                             "--endpoint", endpoint, "--out", "out", *PATIENT_WATCHDOG,
                             "--set", "controller.connect_timeout_s=60"],
                            cwd=tmp_path, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        give_up = time.monotonic() + 120
        while hil(tmp_path, "gains", "--endpoint", endpoint, "--timeout", "0.5").returncode:
            assert proc.poll() is None and time.monotonic() < give_up, "no run to ask"
        # r = 1e-12 passes the generic check; the Riccati solver raises RiccatiError.
        riccati = hil(tmp_path, "gains", "--endpoint", endpoint, "r=1e-12")
        absurd = hil(tmp_path, "gains", "--endpoint", endpoint, "r=1e-300")
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert riccati.returncode == 1, riccati.stderr
    assert ("refused: lqr refused the gains [10.0, 100.0, 100.0, 1.0, 1.0, 1.0, 1e-12]: "
            "RiccatiError: CARE did not converge") in riccati.stderr
    assert absurd.returncode == 1, absurd.stderr
    assert ("refused: lqr gain r (index 6) must be 0 or of magnitude in [1e-12, 1e+09], got "
            "1e-300") in absurd.stderr
    report, plant, controller = reports(tmp_path / "out")
    assert proc.returncode == (0 if report["verdict"] == "PASS" else 1), err
    assert_passed_but_timing(report)  # it ran on, balanced, to its duration
    assert plant["end_reason"] == "duration" and controller["exit_code"] == 0
    assert [e["applied"] for e in report["gain_changes"]] == [False, False]
    assert report["gains"][-1] == 0.01  # the old gains stayed


def lockstep_run(folder: Path, law_returns: str, transport: str
                 ) -> tuple[subprocess.CompletedProcess[str], dict, dict, dict]:
    """A 2 s lockstep `hil run` of a law returning `law_returns`: (done, reports...)."""
    done = hil(folder, "run", *NO_HTML, "--mode", "lockstep", "--duration", "2", "--config",
               own_law(folder, law_returns), "--endpoint", free_endpoint(), "--out", "out",
               "--set", f"run.transport={transport}")
    return (done, *reports(folder / "out"))


@pytest.mark.parametrize("transport", ["zmq", "shm"])
def test_a_one_element_array_from_the_law_is_the_control_on_both_transports(
        tmp_path: Path, transport: str) -> None:
    done, report, _, controller = lockstep_run(tmp_path, "-(self.k @ state).reshape(1)",
                                               transport)
    assert done.returncode == 0, done.stderr
    assert report["verdict"] == "PASS" and controller["controls_sent"] >= 2000


@pytest.mark.parametrize("transport", ["zmq", "shm"])
def test_none_from_the_law_is_a_law_error_and_the_plant_is_sent_safe_on_both_transports(
        tmp_path: Path, transport: str) -> None:
    done, report, plant, controller = lockstep_run(tmp_path, "None if self.n > 100 else 0.0",
                                                   transport)
    assert done.returncode == 1, done.stderr
    assert controller["exit_code"] == 1 and controller["controls_sent"] == 100
    assert controller["law_error"]["error"] == ("control law own:Own returned None "
                                                "(NoneType), not a real number")
    assert controller["end_reason"] == controller["law_error"]["error"]
    assert plant["end_reason"] == "controller left" and plant["controls_applied"] == 100
    assert report["verdict"] == "FAIL"


def test_an_error_escaping_the_loop_keeps_the_whole_report(tmp_path: Path) -> None:
    """A law whose `sigma` raises (outside compute, read after the control is sent)."""
    (tmp_path / "own.py").write_text(
        "class Own:\n"
        "    def __init__(self, gains, **context):\n"
        "        self.n = 0\n\n"
        "    def reset(self):\n"
        "        self.n = 0\n\n"
        "    def compute(self, state, t):\n"
        "        self.n += 1\n"
        "        return 0.0\n\n"
        "    @property\n"
        "    def sigma(self):\n"
        "        if self.n > 50:\n"
        "            raise RuntimeError('sigma broke')\n"
        "        return 0.0\n")
    done = hil(tmp_path, "run", *NO_HTML, "--mode", "lockstep", "--duration", "2",
               "--config", config(tmp_path, "own:Own"), "--endpoint", free_endpoint(),
               "--out", "out")
    _, plant, controller = reports(tmp_path / "out")
    assert done.returncode == 1, done.stderr
    assert controller["exit_code"] == 1
    assert controller["end_reason"] == "error: RuntimeError: sigma broke"
    assert controller["controls_sent"] == 51 and controller["states_received"] == 51
    assert controller["latency_us"]["compute"]["count"] == 51  # sigma is read after that
    assert controller["histograms"] and controller["transport"]["kind"] == "zmq"
    assert plant["end_reason"] == "controller left"  # the bye went out in the cleanup


@pytest.mark.parametrize(("r", "error"), [
    ("1e-12", "controller.gains: lqr refused the gains [10.0, 100.0, 100.0, 1.0, 1.0, 1.0, "
              "1e-12]: RiccatiError: CARE did not converge"),
    ("1e-300", "controller.gains: lqr gain r (index 6) must be 0 or of magnitude in "
               "[1e-12, 1e+09], got 1e-300"),
])
def test_config_gains_the_law_cannot_be_built_with_exit_2_in_one_line(
        tmp_path: Path, r: str, error: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(f"controller:\n  name: lqr\n  gains: [10, 100, 100, 1, 1, 1, {r}]\n")
    done = subprocess.run([str(Path(sys.executable).parent / "hil-controller"), "--config",
                           str(config), "--endpoint", free_endpoint(), "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=120,
                          env=ENV)
    assert done.returncode == 2
    assert done.stderr.startswith(f"hil-controller: {error}") and done.stderr.count("\n") == 1


def test_a_plant_with_more_states_than_the_link_carries_is_refused_at_load(
        tmp_path: Path) -> None:
    (tmp_path / "wide.py").write_text(
        "import numpy as np\n\n\n"
        "class Wide:\n"
        "    state_names = tuple(f's{i}' for i in range(33))\n"
        "    state_units = ('m',) * 33\n"
        "    input_limit = 10.0\n\n"
        "    def derivatives(self, state, u):\n"
        "        return np.zeros(33)\n")
    own_law(tmp_path, "0.0")
    (tmp_path / "wide.yaml").write_text(
        "run: {mode: lockstep, duration_s: 1}\n"
        "plant: {model: 'wide:Wide', initial_state: [" + ", ".join(["0.1"] * 33) + "]}\n"
        "controller: {name: 'own:Own', connect_timeout_s: 60}\n")
    done = hil(tmp_path, "run", *NO_HTML, "--config", "wide.yaml", "--endpoint",
               free_endpoint(), "--out", "out")
    assert done.returncode == 2, done.stderr
    said = ("plant.model: Wide has 33 states; a plant has 1 to 32 (MAX_STATES, the wire's "
            "vector limit): model fewer states or split the plant")
    assert f"hil-plant: {said}" in done.stderr and f"hil-controller: {said}" in done.stderr
    for process in ("plant", "controller"):  # each process's own report, no merged one
        assert json.loads((tmp_path / "out" / f"{process}.json").read_text())["exit_code"] == 2


def logged(path: Path, event: str, proc: subprocess.Popen[str], timeout_s: float = 60.0
           ) -> dict:
    """The first `event` in the JSON-lines log `path`, waiting for it to be written."""
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up:
        if path.exists():
            for line in path.read_text().splitlines():
                if line.endswith("}") and json.loads(line).get("event") == event:
                    return json.loads(line)
        assert proc.poll() is None, f"exited ({proc.returncode}) before {event!r}"
        time.sleep(0.02)  # the log is a file: polled, bounded by the timeout
    raise AssertionError(f"no {event!r} in {path} within {timeout_s} s")


def test_a_controller_replaced_over_shared_memory_ends_refused_with_its_report(
        tmp_path: Path) -> None:
    """Controller A freezes (SIGSTOP) past the plant's watchdog, B attaches and replaces it;
    A resumes (SIGCONT): its next control is refused by the segment (Replaced) or the plant's
    bye says so first. A ends 'replaced by another controller', exit 4 (EXIT_REFUSED), its
    report written, and never says bye for B's plant."""
    endpoint = free_endpoint()
    (tmp_path / "shm.yaml").write_text(
        "run: {mode: realtime, duration_s: 60, transport: shm}\n"
        f"plant: {{endpoint: '{endpoint}', attach_timeout_s: 60}}\n"
        f"controller: {{endpoint: '{endpoint}', connect_timeout_s: 60}}\n"
        "record: {html: false, history_db: null}\n")

    def start(process: str, out: str) -> subprocess.Popen[str]:
        module = {"plant": "plant_server.main", "controller": "controller_client.main"}[process]
        return subprocess.Popen([sys.executable, "-m", module, "--config", "shm.yaml", "--out",
                                 out], cwd=tmp_path, env=ENV, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    plant = start("plant", "plant")
    a = start("controller", "a")
    b: subprocess.Popen[str] | None = None
    try:
        logged(tmp_path / "a" / "controller.log.jsonl", "attached", a)
        a.send_signal(signal.SIGSTOP)
        logged(tmp_path / "plant" / "plant.log.jsonl",
               "watchdog expired: safe output applied and latched", plant)
        b = start("controller", "b")
        logged(tmp_path / "plant" / "plant.log.jsonl",
               "controller replaced: the previous one tripped the watchdog", plant)
        a.send_signal(signal.SIGCONT)
        _, err = a.communicate(timeout=60)
    finally:
        for proc in (a, b, plant):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.wait()
    assert a.returncode == 4, err
    report = json.loads((tmp_path / "a" / "controller.json").read_text())
    assert report["exit_code"] == 4
    assert report["end_reason"].startswith("replaced by another controller: ")
    assert report["transport"]["kind"] == "shm" and report["controls_sent"] > 0
    assert f"hil-controller: {report['end_reason']}" in err
