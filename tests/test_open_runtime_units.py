"""Issue 11's loose ends: nothing assumes a cart's force in N, and lockstep is deterministic.

- Recordings name the plant's input and its unit (`voltage [V]` for the rotary) in plant.rec,
  controller.rec, the CSV/NPZ export and the MCAP schema: a run's column is named as the plant
  names its input (issue 20); a recording in the older layout (`force_n`, labelled with the
  input's name) still reads so.
- report.json's safety section carries each input's name, unit and limits.
- `hil estop` / `hil clear` against a CURVE plant without (or with untrusted) keys: refused
  at once with the reason, exit 4.
- The law's `t` in lockstep is simulated time (state seq x period): two lockstep runs of a law
  that depends on t record the same controls bit for bit.
- The controller logs a latched plant once per latch, with a count at the end.

Real processes on loopback sockets (hil run, hil-plant, the hil CLI), a real ControllerLoop
against a scripted plant socket for the latch log.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import structlog
from cli_in_process import cli
from mcap.reader import make_reader
from structlog.testing import capture_logs

from controller_client.controllers import create_controller
from controller_client.loop import ControllerLoop, LoopSettings
from hil.cli import main as hil_main
from hil.config import dump_config, load_config
from hil.dynamics import create_model
from hil.dynamics.inputs import Inputs, InputsError
from hil.link import messages as msg
from hil.link.transport import ControllerSocket, PlantSocket, wait_for_message
from hil.recording.export import export_recording
from hil.recording.recorder import (
    Column,
    Recorder,
    controller_columns,
    plant_columns,
    read_recording,
)
from plant_server.safety import SafetyGates, SafetyLimits

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
HIL = [sys.executable, "-m", "hil.cli"]
ROTARY_NAMES = ("arm", "pendulum", "arm_dot", "pendulum_dot")


# ------------------------------------------------------------------ recordings and gates
def test_the_input_column_carries_the_plants_name_and_unit_through_csv_and_npz(
        tmp_path: Path) -> None:
    model = create_model("rotary")
    desc = model.describe()
    assert (desc["input_names"], desc["input_units"]) == (["voltage"], ["V"])
    assert "input_name" not in desc and "max_force_n" not in desc  # protocol 2's keys only
    run = tmp_path / "run"
    run.mkdir()
    columns = plant_columns(desc["state_names"], desc["state_units"], model.inputs)
    with Recorder(run / "plant.rec", columns, {"plant": desc}) as rec:
        for i in range(5):
            rec.record((i, 1000 + i, i * 1e-3, 0.0, 0.1, 0.0, 0.0, 0.5 * i, 0, 0, i - 1,
                        i - 1, -1))
    back = read_recording(run / "plant.rec")
    assert back.units["voltage"] == "V" and "force_n" not in back
    out = tmp_path / "plant.csv"
    export_recording(run, "csv", out)
    with out.open() as f:
        header, *rows = list(csv.reader(f))
    assert "voltage [V]" in header and not any(h.startswith("force") for h in header)
    assert [float(r[header.index("voltage [V]")]) for r in rows] == [0.0, 0.5, 1.0, 1.5, 2.0]
    export_recording(run, "npz", tmp_path / "plant.npz")
    with np.load(tmp_path / "plant.npz") as data:
        np.testing.assert_array_equal(data["voltage"], [0.0, 0.5, 1.0, 1.5, 2.0])
        units = dict(zip(data["_columns"], data["_units"], strict=True))
        assert units["voltage"] == "V" and "force_n" not in units
    ctrl = controller_columns(ROTARY_NAMES, desc["state_units"], "voltage", "V")
    assert [c for c in ctrl if c.name == "force_n"] == [Column("force_n", "V", "f8", "voltage")]


def test_a_recording_from_before_labels_reads_with_its_plants_input(tmp_path: Path) -> None:
    """A rotary plant.rec written before columns had labels said `force_n` in N; its header's
    plant description says what the input was, and that is what is read. Without a
    description (an old cart recording) the column reads as it was written."""
    # The description such a recording's header holds: one input under the legacy keys.
    desc = {**create_model("rotary").describe(), "input_name": "voltage", "input_unit": "V",
            "max_force_n": 10.0}
    for key in ("input_names", "input_units", "input_limits"):
        del desc[key]
    old = [c if c.name != "force_n" else Column("force_n", "N")
           for c in plant_columns(desc["state_names"], desc["state_units"])]
    for name, meta in (("rotary.rec", {"plant": desc}), ("cart.rec", {})):
        with Recorder(tmp_path / name, old, meta) as rec:
            rec.record((0, 1, 0.0, 0.0, 0.1, 0.0, 0.0, 1.5, 0, 0, -1, -1, -1))
        raw = (tmp_path / name).read_bytes()
        # What the older writer wrote: no "label" key in the header at all.
        legacy = raw.replace(b', "label": ""', b"")
        assert b'"label"' not in legacy
        (tmp_path / name).write_bytes(_fix_header_crc(legacy))
    rotary = read_recording(tmp_path / "rotary.rec")
    assert rotary.units["force_n"] == "V" and rotary.labels["force_n"] == "voltage"
    assert rotary["force_n"].tolist() == [1.5]
    cart = read_recording(tmp_path / "cart.rec")
    assert cart.units["force_n"] == "N" and cart.labels["force_n"] == "force_n"


def _fix_header_crc(data: bytes) -> bytes:
    """`data` with its JSON header's length and CRC32 made right again after an edit."""
    import struct
    import zlib

    head = struct.Struct("<8sHI")
    magic, version, _ = head.unpack_from(data)
    end = _json_end(data, head.size)
    text = data[head.size:end]
    return (head.pack(magic, version, len(text)) + text + struct.pack("<I", zlib.crc32(text))
            + data[end + 4:])


def _json_end(data: bytes, start: int) -> int:
    """The end of the JSON object starting at `start` (the header has no braces in strings)."""
    depth = 0
    for i in range(start, len(data)):
        if data[i] == ord("{"):
            depth += 1
        elif data[i] == ord("}"):
            depth -= 1
            if depth == 0:
                return i + 1
    raise AssertionError("no end of the JSON header")


def test_the_safety_report_names_the_input_its_unit_and_limit() -> None:
    voltage = Inputs.from_description(create_model("rotary").describe())
    assert voltage == Inputs.single("voltage", "V", 10.0)
    gates = SafetyGates(SafetyLimits(voltage, 10.0, slew_limit_per_s=500.0), ROTARY_NAMES,
                        ("pendulum",))
    assert gates.limit_input([12.0], 0) == [10.0]  # saturated at the limit, in V
    report = gates.report()
    assert report["inputs"] == [{"name": "voltage", "unit": "V", "low": -10.0, "high": 10.0,
                                 "sanity_limit": 100.0}]
    assert report["slew_limit_per_s"] == 500.0
    assert report["saturations"] == 1
    # A description without input names is not one a plant of protocol 2 gives.
    with pytest.raises(InputsError, match="has no 'input_names'"):
        Inputs.from_description({"max_force_n": 150.0})


# ------------------------------------------------------------------ the latch log, the law's t
class TimeLaw:
    """Records the (state seq, t) pairs it is given: state[0] carries the seq."""

    name = "time_law"
    sigma = math.nan
    mass_condition = math.nan
    sigma_floor = 1e-3
    max_force_n = 10.0

    def __init__(self) -> None:
        self.seen: list[tuple[int, float]] = []

    def compute(self, state: np.ndarray, t: float) -> float:
        self.seen.append((int(state[0]), t))
        return math.sin(t)

    def reset(self) -> None:
        pass


def test_a_latched_plant_is_logged_once_per_latch_and_lockstep_t_is_simulated_time(
        endpoint: str) -> None:
    """A scripted lockstep plant on a real socket: states 0..7, flagged safe at 1-3 and 5-6
    (two latches), stamped with wall-clock times that jump about. The loop logs each latch
    once (not once a second), counts them at the end and in its report; the law's t is
    seq x period exactly, whatever the stamps."""
    period_ns = 2_000_000
    # A test before this one in the same process may have configured structlog as a process
    # does (hil.app.logs: the console level filters info lines); the info line "plant left
    # its safe state" is checked here, so start from structlog's defaults.
    structlog.reset_defaults()
    plant = PlantSocket(endpoint)
    sock = ControllerSocket(endpoint)
    law = TimeLaw()
    loop = ControllerLoop(law, sock, LoopSettings(phase_offset=0.3, spin_ns=0,
                                                  connect_timeout_ns=10_000_000_000,
                                                  plant_timeout_ns=10_000_000_000),
                          structlog.get_logger())
    safe = {1, 2, 3, 5, 6}
    ended: list[str] = []
    try:
        with capture_logs() as logs:
            runner = threading.Thread(target=lambda: ended.append(loop.run()))
            runner.start()
            assert wait_for_message(plant.sock, 10_000_000_000, lambda: True)
            peer, hello = plant.recv_nowait()
            assert msg.decode(hello).kind == "hello"
            t0 = time.monotonic_ns()
            plant.send(peer, msg.encode("welcome", msg.PROTOCOL_VERSION, {
                "name": "scripted", "state_names": list(ROTARY_NAMES),
                "state_units": ["rad", "rad", "rad/s", "rad/s"], "mode": "lockstep",
                "rate_hz": 1e9 / period_ns, "period_ns": period_ns, "t0_ns": t0}))
            for seq in range(8):
                stamp = t0 + 7_777_777 * (seq * seq + 1)  # not seq x period
                flags = msg.FLAG_SAFE if seq in safe else 0
                plant.send(peer, msg.pack_state(seq, stamp, [float(seq), 0.0, 0.0, 0.0], flags))
                _wait_for_control(plant, seq)  # sync requests go unanswered: one clock
            plant.send(peer, msg.encode("bye", "duration"))
            runner.join(30)
            assert not runner.is_alive()
    finally:
        sock.close()
        plant.close()
    assert ended == ["plant ended the run: duration"]
    assert law.seen == [(k, k * period_ns * 1e-9) for k in range(8)]
    held = [e for e in logs if e["event"].startswith("plant holds its safe state")]
    assert [e["seq"] for e in held] == [1, 5] and [e["latch"] for e in held] == [1, 2]
    left = [e for e in logs if e["event"].startswith("plant left its safe state")]
    assert [e["seq"] for e in left] == [4, 7]
    summary = [e for e in logs if e["event"] == "plant held its safe state during the run"]
    assert [(e["latches"], e["states"]) for e in summary] == [(2, 5)]
    report = loop.report()
    assert report["safe_latches"] == 2 and report["states_while_safe"] == 5


def _wait_for_control(plant: PlantSocket, seq: int) -> None:
    give_up = time.monotonic() + 10
    while time.monotonic() < give_up:
        wait_for_message(plant.sock, 100_000_000, lambda: True)
        while (got := plant.recv_nowait()) is not None:
            m = msg.decode(got[1])
            if m.kind == "control" and m["state_seq"] == seq:
                return
    raise AssertionError(f"no control for state {seq}")


# ------------------------------------------------------------------ end to end: the rotary
DITHER = '''\
"""LQR plus a known sine of t: the output depends on the t the loop gives the law."""
import math

from controller_client.controllers import create_controller


class Dither:
    def __init__(self, gains, **context):
        self.lqr = create_controller("lqr", None, dt_s=context["dt_s"],
                                     max_force_n=context["max_force_n"],
                                     plant=context["plant"], model=context["model"])

    def compute(self, state, t):
        return self.lqr.compute(state, t) + 0.5 * math.sin(2 * math.pi * 5.0 * t)
'''
AMPLITUDE, HZ = 0.5, 5.0


def _hil(cwd: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HIL, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=ENV)


@pytest.fixture(scope="module")
def rotary_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """Two lockstep runs of the rotary balanced by LQR plus a sine of t."""
    from conftest import free_endpoint

    folder = tmp_path_factory.mktemp("rotary")
    (folder / "dither.py").write_text(DITHER)
    text = (ROOT / "configs" / "rotary.yaml").read_text().replace(
        "  name: lqr\n", '  name: "dither:Dither"\n')
    (folder / "dither.yaml").write_text(
        text + "record: {history_db: null, html: false}\n")
    # The two runs side by side (lockstep does not care how the runs share the machine; the
    # controllers wait for their plants as long as they need).
    runs = [subprocess.Popen([*HIL, "run", "--config", "dither.yaml", "--endpoint",
                              free_endpoint(), "--out", f"out{k}", "--mode", "lockstep",
                              "--duration", "1", "--set", "controller.connect_timeout_s=60"],
                             cwd=folder, env=ENV, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for k in (1, 2)]
    try:
        for run in runs:
            out, err = run.communicate(timeout=240)
            assert run.returncode == 0, out[-3000:] + err[-3000:]
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
                run.wait()
    return folder, folder / "out1", folder / "out2"


# Two `hil run`s of a numba plant and an LQR law: about a minute on the loaded machine.
@pytest.mark.timeout(400)
def test_two_lockstep_runs_of_a_time_dependent_law_record_the_same_controls(
        rotary_runs: tuple[Path, Path, Path]) -> None:
    folder, one, two = rotary_runs
    a, b = read_recording(one / "controller.rec"), read_recording(two / "controller.rec")
    assert a.rows == b.rows == 1001  # states 0..999 and the final one, each answered
    assert a.inputs == b.inputs == ("voltage",)
    same = ("control_seq", "state_seq", *ROTARY_NAMES, "voltage")
    for name in same:  # bit for bit (the times of day differ, of course)
        assert a[name].tobytes() == b[name].tobytes(), name
    assert not np.array_equal(a["state_t_ns"], b["state_t_ns"])  # two runs, two wall clocks
    # The law was given t = seq x period: the sine is exactly that of simulated time.
    model = create_model("rotary")
    lqr = create_controller("lqr", None, dt_s=1e-3, max_force_n=model.max_force_n,
                            plant=model.describe(), model=model)
    state = np.zeros(4)
    t = a["state_seq"] * 1_000_000 * 1e-9
    expected = np.empty(a.rows)
    for i in range(a.rows):
        state[:] = [a[n][i] for n in ROTARY_NAMES]
        expected[i] = lqr.compute(state, t[i]) + AMPLITUDE * math.sin(2 * math.pi * HZ * t[i])
    assert expected.tobytes() == a["voltage"].tobytes()
    wall = (a["state_t_ns"] - a.meta["t0_ns"]) * 1e-9  # what the law was given before
    assert np.max(np.abs(np.sin(2 * math.pi * HZ * wall) - np.sin(2 * math.pi * HZ * t))) > 1e-3
    # hil replay agrees (it gives the law the same t); the law's file beside the run's config.
    (one / "dither.py").write_text(DITHER)
    replay = _hil(folder, "replay", str(one))
    assert replay.returncode == 0, replay.stdout + replay.stderr


def test_the_rotarys_recordings_exports_and_report_say_voltage_in_v(
        rotary_runs: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, run, _ = rotary_runs
    plant, ctrl = read_recording(run / "plant.rec"), read_recording(run / "controller.rec")
    for rec in (plant, ctrl):
        assert rec.inputs == ("voltage",) and "force_n" not in rec
        assert rec.units["voltage"] == "V" and rec.labels["voltage"] == "voltage"
    assert _hil(run, "export", str(run), "--format", "csv", "--output",
                str(tmp_path / "p.csv")).returncode == 0
    header = (tmp_path / "p.csv").read_text().splitlines()[0].split(",")
    assert header[3:8] == ["arm [rad]", "pendulum [rad]", "arm_dot [rad/s]",
                           "pendulum_dot [rad/s]", "voltage [V]"]
    assert hil_main(["export", str(run), "--format", "mcap", "--output",
                     str(tmp_path / "r.mcap")]) == 0
    schemas, first = {}, {}
    with (tmp_path / "r.mcap").open("rb") as f:
        for schema, channel, message in make_reader(f).iter_messages(log_time_order=False):
            schemas[channel.topic] = json.loads(schema.data)["properties"]
            first.setdefault(channel.topic, json.loads(message.data))
    for topic in ("/plant/state", "/controller/control"):
        assert schemas[topic]["voltage"]["unit"] == "V", topic
        assert "force" not in schemas[topic] and "force_n" not in schemas[topic]
        assert "voltage" in first[topic]
    report = json.loads((run / "report.json").read_text())
    (voltage,) = report["safety"]["inputs"]
    assert voltage["name"] == "voltage" and voltage["unit"] == "V"
    assert voltage["high"] == -voltage["low"] == create_model("rotary").max_force_n == 10.0


# ------------------------------------------------------------------ operators against CURVE


@pytest.mark.timeout(200)
def test_hil_estop_and_clear_without_the_keys_are_refused_at_once_exit_4(
        tmp_path: Path, endpoint: str, capsys: pytest.CaptureFixture[str]) -> None:
    keys, stranger = tmp_path / "keys", tmp_path / "stranger"
    for folder in (keys, stranger):
        assert hil_main(["keygen", str(folder)]) == 0
    (stranger / "plant.key").write_bytes((keys / "plant.key").read_bytes())
    config = tmp_path / "plant.yaml"
    config.write_text(dump_config(load_config(None, {
        "plant.endpoint": endpoint, "plant.attach_timeout_s": 120.0,
        "security.curve": True, "security.keys_dir": str(keys),
        "record.html": False, "record.history_db": None})))
    out = tmp_path / "out"
    plant = subprocess.Popen([sys.executable, "-m", "plant_server.main", "--config", str(config),
                              "--out", str(out), "--run-id", "curve"], cwd=ROOT, env=ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_log(out / "plant.log.jsonl", "plant serving", plant)
        for command in (["estop", "--reason", "x"], ["clear"]):
            started = time.monotonic()
            bare = cli(capsys, *command, "--endpoint", endpoint, "--timeout", "30")
            assert bare.returncode == 4, bare.stderr
            assert time.monotonic() - started < 25  # at once, not after the 30 s timeout
            assert (f"hil {command[0]}: the plant at {endpoint} refused the connection: it "
                    "requires CURVE (security.curve on); pass --keys DIR") in bare.stderr
            other = cli(capsys, *command, "--endpoint", endpoint, "--keys",
                              str(stranger), "--timeout", "30")
            assert other.returncode == 4, other.stderr
            assert (f"refused this client's CURVE key ({stranger / 'controller.key'})"
                    in other.stderr)
        assert plant.poll() is None  # none of them reached the plant
        cleared = cli(capsys, "clear", "--endpoint", endpoint, "--keys", str(keys))
        assert cleared.returncode == 0 and "nothing to clear" in cleared.stdout, cleared.stderr
        stop = cli(capsys, "estop", "--endpoint", endpoint, "--keys", str(keys),
                         "--reason", "test over")
        assert stop.returncode == 0, stop.stderr
        plant.communicate(timeout=60)
    finally:
        if plant.poll() is None:
            plant.kill()
            plant.communicate()
    report = json.loads((out / "plant.json").read_text())
    assert report["safety"]["estop"] == "test over"  # the only e-stop that got in


def _wait_for_log(path: Path, event: str, proc: subprocess.Popen[str],
                  timeout_s: float = 90.0) -> None:
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up:
        if path.exists() and any(f'"event": "{event}"' in line or f'"event":"{event}"' in line
                                 for line in path.read_text().splitlines()):
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError(f"no {event!r} in {path} within {timeout_s} s")
