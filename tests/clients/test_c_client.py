"""libhil (clients/c), the C client library: built with the system gcc under strict warnings
and under AddressSanitizer and UBSan; its codec against the golden vectors
(docs/protocol-vectors.json: messages, rejects, shared-memory segment images); its schedule;
and real closed loops: `hil run --controller-cmd`
with the C LQR example against the real hil-plant, in lockstep (the sanitized build over
ZeroMQ and the plain one over shared memory, against the Python lqr law's run) and at 1 kHz in
real time with `hil gains` relayed to it and a second controller refused."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import NO_HTML, assert_passed_but_timing, free_endpoint

from hil.link import operator
from hil.recording.recorder import read_recording

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "c"
VECTORS = json.loads((ROOT / "docs" / "protocol-vectors.json").read_text())
HIL = [sys.executable, "-m", "hil.cli"]
STRICT = "-Wall -Wextra -Werror -std=c99"
# The kinds a controller sends (libhil encodes them); it sends every number of u and of the
# gains as a float.
SENT = {"hello", "control", "sync", "heartbeat", "clear", "bye", "gains_reply"}


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    """Library, example and codec test, plain and under the sanitizers, built once, side by
    side: {"plain" | "asan": (the build folder, make's output)}."""
    root = tmp_path_factory.mktemp("libhil")
    makes = {name: (root / name, subprocess.Popen(
        ["make", "-C", str(CLIENT), f"BUILD={root / name}", *options, "all", "test-codec"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        for name, options in (("plain", ()), ("asan", ("SANITIZE=1",)))}
    done = {name: (folder, make.communicate(timeout=180)[0])
            for name, (folder, make) in makes.items()}
    for name, (_, make) in makes.items():
        assert make.returncode == 0, done[name][1]
    return done


@pytest.fixture(scope="module")
def build(builds: dict[str, tuple[Path, str]]) -> tuple[Path, str]:
    """(the build folder, make's output)."""
    return builds["plain"]


@pytest.fixture(scope="module")
def asan_build(builds: dict[str, tuple[Path, str]]) -> Path:
    return builds["asan"][0]


def _codec(folder: Path, lines: list[str]) -> list[list[str]]:
    done = subprocess.run([str(folder / "test_codec")], input="\n".join(lines) + "\n",
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    return [line.split("\t") for line in done.stdout.splitlines()]


def _typed(value: Any) -> Any:
    """A value with its exact types made comparable (an int never equals a float here; NaN
    equals NaN)."""
    if isinstance(value, list):
        return [_typed(v) for v in value]
    if isinstance(value, dict):
        return [(k, _typed(v)) for k, v in value.items()]  # in order, as on the wire
    if isinstance(value, float):
        return ("float", "nan" if math.isnan(value) else value.hex())
    return (type(value).__name__, value)


def _golden_lines() -> list[str]:
    return [f"decode {v['name']} {v['hex']}" for v in VECTORS["messages"] + VECTORS["rejects"]]


def _expect_reencoded(vector: dict[str, Any]) -> bool:
    fields = vector["fields"]
    if vector["kind"] not in SENT:
        return False
    floats = [*fields.get("u", []), *fields.get("values", []), *fields.get("old", [])]
    return all(isinstance(v, float) for v in floats)


def test_library_example_and_codec_test_build_with_strict_warnings(build: tuple[Path, str]
                                                                   ) -> None:
    folder, output = build
    compiles = [line for line in output.splitlines() if line.startswith("gcc ")]
    assert len(compiles) >= 8 and all(STRICT in line for line in compiles), output
    for name in ("libhil.a", "lqr_dip", "test_codec"):
        assert (folder / name).stat().st_size > 0


def test_the_readmes_example_compiles_under_the_same_flags(build: tuple[Path, str],
                                                           tmp_path: Path) -> None:
    readme = (CLIENT / "README.md").read_text()
    example = re.search(r"```c\n(.*?)```", readme, re.S)
    assert example is not None, "clients/c/README.md's C example"
    (tmp_path / "example.c").write_text(example.group(1))
    done = subprocess.run(["gcc", *STRICT.split(), "-pedantic", f"-I{CLIENT}", "example.c",
                           str(build[0] / "libhil.a"), "-lzmq", "-lmsgpackc", "-lm", "-o",
                           "example"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_codec_decodes_each_golden_message_to_its_fields_with_their_types(
        build: tuple[Path, str]) -> None:
    answers = {row[0]: row for row in _codec(build[0], _golden_lines())}
    for vector in VECTORS["messages"]:
        name, status, decoded, _ = answers[vector["name"]]
        assert status == "ok", (name, decoded)
        expected = [vector["kind"], *vector["fields"].values()]
        assert _typed(json.loads(decoded)) == _typed(expected), name


def test_codec_encodes_what_a_controller_sends_to_the_golden_bytes(build: tuple[Path, str]
                                                                  ) -> None:
    answers = {row[0]: row for row in _codec(build[0], _golden_lines())}
    expected = [v for v in VECTORS["messages"] if _expect_reencoded(v)]
    assert {v["kind"] for v in expected} == SENT  # every kind libhil sends is covered
    for vector in expected:
        assert answers[vector["name"]][3] == vector["hex"], vector["name"]


def test_codec_rejects_each_golden_reject_with_its_code(build: tuple[Path, str]) -> None:
    answers = {row[0]: row for row in _codec(build[0], _golden_lines())}
    for vector in VECTORS["rejects"]:
        name, status, code, _ = answers[vector["name"]]
        assert (status, code) == ("reject", vector["code"]), (name, answers[name])


def test_codec_under_sanitizers_answers_every_vector_as_the_plain_build(
        build: tuple[Path, str], asan_build: Path) -> None:
    lines = _golden_lines()
    assert _codec(asan_build, lines) == _codec(build[0], lines)


def test_the_schedule_sleeps_to_its_absolute_deadline_never_short_of_it(
        build: tuple[Path, str]) -> None:
    # clock_nanosleep to an absolute time: woken at or after the deadline (minus the early
    # margin asked for), never before, however the machine is loaded.
    rows = _codec(build[0], ["sleep 0", "sleep 1000000"])
    assert [row[0] for row in rows] == ["sleep", "sleep"]
    assert all(0 <= int(row[1]) < 1_000_000_000 for row in rows), rows


def test_shared_memory_images_are_read_and_written_as_the_golden_segments(
        build: tuple[Path, str]) -> None:
    images = VECTORS["shm"]["images"]
    lines = []
    for image in images:
        c = image["control"]
        lines.append(" ".join(map(str, [
            "shm", image["name"], image["n_states"], image["n_inputs"], image["session"],
            c["seq"], c["state_seq"], c["t_state_rx_ns"], c["t_send_ns"], c["compute_ns"],
            *(repr(float(u)) for u in c["u"]), image["hex"]])))
    answers = _codec(build[0], lines)
    assert len(answers) == len(images) >= 2
    for (name, state, written), image in zip(answers, images, strict=True):
        assert name == image["name"]
        read = {key: _typed(value) for key, value in json.loads(state).items()}
        assert read == {key: _typed(value) for key, value in image["state"].items()}, name
        assert written == image["hex"], name  # the seqlock write, the bell rung, byte for byte


def test_schedule_skips_and_counts_the_cycles_an_overrun_passed(build: tuple[Path, str]
                                                               ) -> None:
    # t0 1000, period 100, as hil/runtime/schedule.py: done at 1050, the next tick is 1100;
    # done at 1450, the 1200 and 1300 ticks are passed by a whole period (skipped) and 1400
    # is run late; done at 1600, 1500 is skipped and 1600 is due.
    [row] = _codec(build[0], ["rate 1000 100 1050 1450 1600"])
    assert row == ["rate", "1100/0", "1400/2", "1600/1", ";3"]


def test_the_example_gain_is_the_python_lqr_design_for_the_default_plant() -> None:
    from controller_client.main import law_from_config
    from hil.config import load_config

    config = load_config(ROOT / "configs" / "default.yaml",
                         {"controller.name": "lqr", "controller.gains": None})
    designed = law_from_config(config).k.tolist()
    text = (CLIENT / "examples" / "lqr_dip.c").read_text()
    block = re.search(r"lqr state = \{\{([^}]*)\}", text)
    assert block is not None, "the example's K initialiser"
    pasted = [float(v) for v in block.group(1).split(",")]
    assert pasted == pytest.approx(designed, rel=1e-12)
    riccati = re.search(r"P\[N_STATES \* N_STATES\] = \{([^}]*)\}", text)
    assert riccati is not None, "the example's P initialiser"
    assert [float(v) for v in riccati.group(1).split(",")] == pytest.approx(
        law_from_config(config).p_matrix.ravel().tolist(), rel=1e-12)


@pytest.mark.parametrize(("variable", "value", "says"), [
    ("HIL_TRANSPORT", "udp", "transport udp: must be zmq or shm"),
    ("HIL_PHASE_OFFSET", "0.9", "HIL_PHASE_OFFSET=0.9: must be a number in [0, 0.85]"),
    ("HIL_KEYS_DIR", "keys", "libhil does not speak yet"),
])
def test_a_bad_environment_is_refused_naming_the_variable_before_connecting(
        build: tuple[Path, str], variable: str, value: str, says: str) -> None:
    env = {**os.environ, "HIL_ENDPOINT": free_endpoint(), variable: value}
    done = subprocess.run([str(build[0] / "lqr_dip")], env=env, capture_output=True,
                          text=True, timeout=10)
    assert done.returncode == 2 and says in done.stderr, done.stderr


def _hil_run(out: Path, program: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HIL, "run", "--controller-cmd", str(program), "--out", str(out),
                           "--endpoint", free_endpoint(), *options], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)


def _lockstep_run(out: Path, *controller: str) -> subprocess.Popen[str]:
    return subprocess.Popen([*HIL, "run", *NO_HTML, *controller, "--mode", "lockstep",
                             "--duration", "1.5", "--out", str(out), "--endpoint",
                             free_endpoint()], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT)


@pytest.mark.slow
def test_sanitized_c_controller_balances_the_plant_in_lockstep_as_the_python_law_does(
        build: tuple[Path, str], asan_build: Path, tmp_path: Path) -> None:
    out, python_out, shm_out = tmp_path / "c", tmp_path / "python", tmp_path / "shm"
    # The same gain in Python, and the C controller over shared memory: the same deterministic
    # lockstep run, alongside (lockstep does not care how the runs share the machine).
    others = {"python": _lockstep_run(python_out, "--controller", "lqr"),
              "shm": _lockstep_run(shm_out, "--transport", "shm", "--controller-cmd",
                                   str(build[0] / "lqr_dip"))}
    try:
        done = _hil_run(out, asan_build / "lqr_dip", "--mode", "lockstep", "--duration",
                        "1.5", "--set", "record.history_db=null")
        outputs = {name: run.communicate(timeout=120) for name, run in others.items()}
    finally:
        for run in others.values():
            if run.poll() is None:
                run.kill()
                run.wait()
    assert done.returncode == 0, done.stdout + done.stderr
    assert all(run.returncode == 0 for run in others.values()), outputs
    report = json.loads((out / "report.json").read_text())
    controller = json.loads((out / "controller.json").read_text())
    plant = json.loads((out / "plant.json").read_text())
    assert report["verdict"] == "PASS" and report["controller"] == "lqr_dip.c"
    assert (out / "report.html").stat().st_size > 0
    assert controller["exit_code"] == 0 and controller["end_reason"] == \
        "plant ended the run: duration"
    # Every state but the final one answered, each control applied, nothing rejected.
    assert controller["controls_sent"] == plant["controls_applied"] == 1500
    assert controller["states_dropped"] == 0 and plant["rejected_messages"] == 0
    assert controller["latency_us"]["compute"]["count"] == 1500
    assert report["gains"] == pytest.approx(controller["gains"]) and len(report["gains"]) == 6
    # controller.rec, read by hil's own reader: one row per control, closed, plotted.
    recording = read_recording(out / "controller.rec")
    assert recording.complete and recording.problem is None and recording.rows == 1500
    assert recording.inputs == ("force",) and recording["state_seq"].tolist() == list(range(1500))
    assert controller["recording"]["rows_written"] == 1500 and "recording_error" not in {
        g["name"] for g in report["gates"]}
    assert (out / "stability.png").stat().st_size > 0
    gates = {g["name"]: g for g in report["gates"]}  # the stability gates, as for Python laws
    assert gates["stability.lyapunov.decrease_ratio"]["passed"]
    assert gates["stability.actuator.saturation_duty"]["passed"]
    # The Python law's run and the C one over shared memory: the same trajectory.
    python_report = json.loads((python_out / "report.json").read_text())
    assert report["final_state"] == python_report["final_state"]  # bit for bit
    shm = json.loads((shm_out / "controller.json").read_text())
    assert json.loads((shm_out / "report.json").read_text())["final_state"] == \
        report["final_state"]
    assert shm["transport"]["kind"] == "shm" and shm["controls_sent"] == 1500
    assert controller["stability"]["surface"]["abs_max"] == pytest.approx(
        json.loads((python_out / "controller.json").read_text())["stability"]["surface"]
        ["abs_max"], rel=1e-12)


def _wait_for_gains(endpoint: str, run: subprocess.Popen[str], timeout_s: float
                    ) -> operator.GainsAnswer:
    """The controller's first answer to `hil gains` (before it attaches the plant says none
    is attached); fails with the run's output if the run ends or `timeout_s` passes first."""
    give_up = time.monotonic() + timeout_s
    while True:
        try:
            answer = operator.gains(endpoint, [], [], timeout_s=1.0)
        except operator.NoAnswer:
            answer = None
        if answer is not None and answer.ok:
            return answer
        if run.poll() is not None or time.monotonic() > give_up:
            if run.poll() is None:
                run.kill()
            stdout, stderr = run.communicate()
            pytest.fail(f"no answer to hil gains from the C controller (last: "
                        f"{answer.detail if answer else None}):\n{stdout}\n{stderr}")
        time.sleep(0.05)


@pytest.mark.slow
def test_c_controller_runs_1khz_realtime_with_gains_relayed_and_a_second_one_refused(
        build: tuple[Path, str], tmp_path: Path) -> None:
    folder, endpoint, out = build[0], free_endpoint(), tmp_path / "run"
    run = subprocess.Popen([*HIL, "run", "--controller-cmd", str(folder / "lqr_dip"), "--out",
                            str(out), "--endpoint", endpoint, "--duration", "3", *NO_HTML,
                            "--set", "plant.watchdog_timeout_ms=250"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        current = _wait_for_gains(endpoint, run, 60)
        assert current.names[:2] == ["k_x", "k_theta1"] and current.values[0] == \
            pytest.approx(31.622776601682467)
        applied = operator.gains(endpoint, ["k_x"], [30.0])
        refused = operator.gains(endpoint, ["k_nope"], [1.0])
        by_law = operator.gains(endpoint, [], [30.0, *current.values[1:5], 2e5])
        too_few = operator.gains(endpoint, [], [30.0])
        second = subprocess.run([str(folder / "lqr_dip")], capture_output=True, text=True,
                                timeout=20, env={**os.environ, "HIL_ENDPOINT": endpoint,
                                                 "HIL_OUT": str(tmp_path)})
        stdout, stderr = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    report = json.loads((out / "report.json").read_text())
    assert_passed_but_timing(report)  # balanced, gates passed; the timing gates are the machine's
    assert run.returncode == (0 if report["verdict"] == "PASS" else 1), stdout + stderr
    assert applied.ok and applied.values[0] == 30.0 and applied.old[0] == current.values[0]
    assert not refused.ok and "no gain named 'k_nope'" in refused.detail
    assert "k_x, k_theta1, k_theta2, k_x_dot, k_theta1_dot, k_theta2_dot" in refused.detail
    assert not by_law.ok and "k_theta2_dot = 200000 is out of range" in by_law.detail
    assert not too_few.ok and "has 6 gains, 1 values given" in too_few.detail
    assert by_law.values == applied.values  # the old gains stay
    assert second.returncode == 4 and "already_attached" in second.stderr
    assert json.loads((tmp_path / "controller.json").read_text())["exit_code"] == 4
    assert report["mode"] == "realtime" and report["rate_hz"] == 1000
    assert report["gains"][0] == 30.0
    changes = report["gain_changes"]
    assert [c["applied"] for c in changes] == [True, False, False, False]
    assert changes[0]["new"][0] == 30.0 and changes[1]["new"] is None
    # run time in s, from the plant's first tick (a request before it is negative, as Python's)
    assert changes[0]["time"] <= changes[3]["time"] < 3.5
    controller = json.loads((out / "controller.json").read_text())
    assert controller["controls_sent"] > 2500
    assert report["counters"]["controller_overruns"] == controller["overruns"]
