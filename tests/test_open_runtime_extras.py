"""The open runtime's finer points: `hil gains` through a junk flood, a plant model's numba
`derivatives_kernel`, gain-change markers on the report's plots.

Real sockets and a real plant server for the flood; the model loaded from a file beside its
YAML as a lab would; the plots drawn by the report writer from a run folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
import structlog
import zmq
from cli_in_process import cli
from scipy.integrate import solve_ivp

from hil.config import build_plant_model, load_config
from hil.dynamics import create_model
from hil.link import messages as msg
from hil.link import operator
from hil.link.transport import PlantSocket
from hil.recording.recorder import read_recording
from hil.reporting import html as html_report
from plant_server.backends import SimBackend
from plant_server.server import PlantServer, PlantSettings
from tests.hil.synthetic_run import make_run

MS = 1_000_000
BUDGET = 16


# ------------------------------------------------------------------ gains through a flood
def _drain(server: PlantServer, done: Any, timeout_s: float = 5.0) -> None:
    give_up = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < give_up, server.counters.rejected_by_kind
        server.sock.sock.poll(10)
        server.drain()


def test_hil_gains_is_answered_through_a_junk_flood_past_the_strangers_budget(
        endpoint: str) -> None:
    """The per-tick budget for unknown senders is spent by junk; `gains_get` and `gains_set`
    from `hil gains` (hil.link.operator.gains) still reach the attached controller and its
    answer comes back, like `hil estop` and `hil clear`."""
    model = create_model("dip", {}, substeps=4)
    backend = SimBackend(model, np.array([0.0, 0.1, -0.05, 0.0, 0.0, 0.0]), MS)
    settings = PlantSettings(mode="realtime", period_ns=MS, duration_s=1.0, start_delay_ns=0,
                             watchdog_timeout_ns=20 * MS, attach_timeout_ns=1000 * MS,
                             stranger_budget_per_tick=BUDGET)
    sock = PlantSocket(endpoint, ctx=zmq.Context())
    server = PlantServer(backend, sock, settings, structlog.get_logger())
    ctx = zmq.Context()
    controller, stranger = (ctx.socket(zmq.DEALER) for _ in range(2))
    for s in (controller, stranger):
        s.setsockopt(zmq.LINGER, 0)
        s.connect(endpoint)
    gains = [31.62, -633.6]
    try:
        # The attached controller's side of the relay: what ControllerLoop._on_gains answers.
        controller.send(msg.encode("hello", msg.PROTOCOL_VERSION, "test-controller"))
        _drain(server, lambda: server.peer is not None)
        assert msg.decode(controller.recv()).kind == "welcome"
        counts = server.counters.rejected_by_kind
        for request in ([], [35.0, -600.0]):  # hil gains; hil gains 35 -600
            server.inbox.stranger.open()  # what each realtime tick does
            before = counts.get("over_budget", 0)
            for i in range(100):
                stranger.send(msgpack.packb(["self_destruct", i]))
            _drain(server, lambda b=before: counts.get("over_budget", 0) == b + 100 - BUDGET)
            assert server.inbox.stranger.left == 0  # the budget is spent: strangers go unread
            answers: list[Any] = []
            asker = threading.Thread(target=lambda r=request, a=answers: a.append(
                operator.gains(endpoint, [], r, timeout_s=5.0)))
            asker.start()
            relayed = None
            give_up = time.monotonic() + 6
            while asker.is_alive() and time.monotonic() < give_up:
                server.sock.sock.poll(10)
                server.drain()
                if controller.poll(0):
                    relayed = msg.decode(controller.recv())
                    assert relayed.kind == ("gains_set" if request else "gains_get")
                    old = list(gains)
                    if request:
                        assert list(relayed["values"]) == request
                        gains = list(request)
                    controller.send(msg.encode("gains_reply", relayed["request_id"], True,
                                               "ok", ["k_x", "k_theta1"], gains, old))
            asker.join(timeout=1)
            assert relayed is not None, "the request never reached the controller"
            assert len(answers) == 1 and answers[0].ok
            assert answers[0].values == gains and answers[0].names == ["k_x", "k_theta1"]
            assert counts["over_budget"] == before + 100 - BUDGET  # the request not among them
    finally:
        controller.close()
        stranger.close()
        ctx.term()
        sock.close()


# ------------------------------------------------------------------ a numba kernel
KERNEL_PLANT = '''
import numpy as np
from numba import njit

G, L, C, M = 9.81, 0.5, 0.3, 0.2


@njit(cache=False)
def _kernel(state, u, out):
    out[0] = state[1]
    out[1] = G / L * np.sin(state[0]) - C * state[1] + u / (M * L * L)


class Pendulum:
    """An inverted pendulum on a motor: theta from upright; a Python and a numba version."""
    state_names = ("theta", "theta_dot")
    state_units = ("rad", "rad/s")
    input_name, input_unit, input_limit = "torque", "N m", 2.0
    python_calls = 0
    derivatives_kernel = staticmethod(_kernel)

    def derivatives(self, state, u):
        type(self).python_calls += 1
        return np.array([state[1], G / L * np.sin(state[0]) - C * state[1] + u / (M * L * L)])
'''


def test_a_plants_numba_kernel_is_used_and_agrees_with_its_python_derivatives(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    sys.modules.pop("kernel_plant", None)
    (tmp_path / "kernel_plant.py").write_text(KERNEL_PLANT)
    (tmp_path / "lab.yaml").write_text(
        'plant: {model: "kernel_plant:Pendulum", initial_state: [0.2, 0.0], substeps: 4}\n')
    model = build_plant_model(load_config(tmp_path / "lab.yaml"))
    cls = sys.modules["kernel_plant"].Pendulum
    assert cls.python_calls == 1  # checked once at plant.initial_state, against the kernel
    dt, steps = 1e-3, 2000
    u = np.sin(np.arange(steps) * 0.01) * 3.0  # beyond the 2 N m limit at times: saturated
    y = np.array([0.2, 0.0])
    out = np.empty(2)
    compiled = []
    for k in range(steps):
        model.step(y, float(u[k]), dt, out)
        y = out.copy()
        compiled.append(y)
    assert cls.python_calls == 1, "the steps called the Python derivatives, not the kernel"
    # The same steps through the Python derivatives (the model without its kernel).
    model._kernel = None
    y = np.array([0.2, 0.0])
    for k in range(steps):
        model.step(y, float(u[k]), dt, out)
        y = out.copy()
        np.testing.assert_allclose(y, compiled[k], rtol=1e-12, atol=1e-14)
    assert cls.python_calls == 1 + 4 * 4 * steps  # RK4: 4 calls per substep
    # And both against an independent integrator, the input held (and saturated) per step.
    ref = np.array([0.2, 0.0])
    for k in range(steps):
        uk = float(np.clip(u[k], -2.0, 2.0))
        sol = solve_ivp(lambda _t, s, uk=uk: [s[1], 9.81 / 0.5 * np.sin(s[0]) - 0.3 * s[1]
                                              + uk / (0.2 * 0.25)],
                        (0.0, dt), ref, rtol=1e-12, atol=1e-14, method="DOP853")
        ref = sol.y[:, -1]
        if k % 200 == 0 or k == steps - 1:
            np.testing.assert_allclose(compiled[k], ref, rtol=1e-8, atol=1e-10)
    assert abs(compiled[-1][0]) > 1.0  # it fell: the comparison covered a nonlinear swing


# ------------------------------------------------------------------ markers on the plots
def _purple_columns(png: Path) -> np.ndarray:
    from matplotlib.image import imread

    rgb = imread(png)[..., :3]
    target = np.array([0x70, 0x48, 0xE8]) / 255.0
    near = np.linalg.norm(rgb - target, axis=2) < 0.3
    return np.flatnonzero(near.sum(axis=0) >= 20)  # columns crossed by a vertical line


@pytest.mark.slow
def test_the_reports_plots_mark_each_applied_gain_change(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", steps=2000)
    report = json.loads((run / "report.json").read_text())
    report["gain_changes"] = [
        {"time": 0.5, "who": "a@lab", "names": ["k"], "old": [1.0], "new": [2.0],
         "applied": True, "detail": "applied before the next control"},
        {"time": 1.0, "who": "b@lab", "names": ["k"], "old": [2.0], "new": None,
         "applied": False, "detail": "no gain named 'kx'"},
        {"time": 1.5, "who": "a@lab", "names": ["k"], "old": [2.0], "new": [3.0],
         "applied": True, "detail": "applied before the next control"}]
    (run / "report.json").write_text(json.dumps(report))
    assert html_report.gain_change_times(report) == [0.5, 1.5]  # the refused one changed nothing
    html_report.write_html_report(run)
    for name in ("trajectories.png", "timing.png", "stability.png"):
        columns = _purple_columns(run / name)
        # Two vertical lines (0.5 s and 1.5 s), well apart, none for the refused request.
        groups = np.split(columns, np.flatnonzero(np.diff(columns) > 3) + 1)
        assert len(groups) == 2, (name, columns)
        first, second = (float(np.mean(g)) for g in groups)
        assert second > first + 100, (name, first, second)
    # The figure itself: a vertical line at each change on every axis, on the run-time axis.
    plant = read_recording(run / "plant.rec")
    inputs = html_report.plant_inputs(report, plant)  # the run's one input, as the page has it
    assert len(inputs) == 1
    fig = html_report._trajectory_figure(plant, plant["sim_time_s"], inputs, [0.5, 1.5])
    for ax in fig.axes:
        marks = [line.get_xdata()[0] for line in ax.get_lines()
                 if line.get_color() == html_report.GAIN_MARK_COLOR]
        assert marks == [0.5, 1.5]
    # Without changes, no marks.
    del report["gain_changes"]
    (run / "report.json").write_text(json.dumps(report))
    html_report.write_html_report(run)
    assert len(_purple_columns(run / "trajectories.png")) == 0


# ------------------------------------------------------------------ end to end
ROOT = Path(__file__).resolve().parent.parent
HIL = [sys.executable, "-m", "hil.cli"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def hil(cwd: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HIL, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=ENV)




# Two processes, a long lockstep run and several hil commands: under the shared machine's
# load (15 on 2 cores) this took over the default 120 s; alone it takes about 30 s.
@pytest.mark.timeout(300)
def test_hil_gains_with_curve_on_works_with_the_keys_and_is_refused_without(
        tmp_path: Path, endpoint: str, capsys: pytest.CaptureFixture[str]) -> None:
    keys, stranger_keys = tmp_path / "keys", tmp_path / "stranger"
    for folder in (keys, stranger_keys):
        assert cli(capsys, "keygen", str(folder)).returncode == 0
    # A client that knows the plant's public key but whose own key the plant never authorized.
    (stranger_keys / "plant.key").write_bytes((keys / "plant.key").read_bytes())
    assert hil(tmp_path, "new", "controller", "mylaw").returncode == 0
    config = tmp_path / "mylaw.yaml"
    config.write_text(config.read_text().replace(
        "\ncontroller:\n", "\ncontroller:\n  connect_timeout_s: 60\n")
        + f"security: {{curve: true, keys_dir: {keys}}}\n"
        "record: {history_db: null, html: false}\n")
    proc = subprocess.Popen([*HIL, "run", "--config", "mylaw.yaml", "--endpoint", endpoint,
                             "--out", "out", "--mode", "lockstep", "--duration", "600"],
                            cwd=tmp_path, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        give_up = time.monotonic() + 180  # both processes start (25 s seen under load)
        while True:  # until the controller has attached and answers through the plant
            shown = cli(capsys, "gains", "--endpoint", endpoint, "--keys", str(keys),
                        "--timeout", "0.5")
            if shown.returncode == 0:
                break
            if proc.poll() is not None:
                out, err = proc.communicate()
                pytest.fail(f"the run ended before hil gains was answered:\n{out[-3000:]}\n"
                            f"{err[-3000:]}")
            assert time.monotonic() < give_up, shown.stderr
        assert shown.stdout.startswith("gains: k_x=31.62 ")
        # No keys: refused in the handshake, at once (not after the 30 s timeout), exit 4.
        started = time.monotonic()
        bare = cli(capsys, "gains", "--endpoint", endpoint, "k_x=99", "--timeout", "30")
        assert bare.returncode == 4, bare.stderr
        assert time.monotonic() - started < 25
        assert (f"hil gains: the plant at {endpoint} refused the connection: it requires CURVE "
                "(security.curve on); pass --keys DIR") in bare.stderr
        # A key the plant does not trust: refused, naming the key.
        other = cli(capsys, "gains", "--endpoint", endpoint, "k_x=99", "--keys",
                    str(stranger_keys), "--timeout", "30")
        assert other.returncode == 4, other.stderr
        assert (f"refused this client's CURVE key ({stranger_keys / 'controller.key'})"
                in other.stderr)
        # With the keys: applied.
        changed = cli(capsys, "gains", "--endpoint", endpoint, "--keys", str(keys), "k_x=35")
        assert changed.returncode == 0, changed.stderr
        assert "-> k_x=35 " in changed.stdout
        stop = cli(capsys, "estop", "--endpoint", endpoint, "--keys", str(keys),
                   "--reason", "test over")
        assert stop.returncode == 0, stop.stderr
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    # Only the request with the keys reached the law; the refused ones never got in.
    events = report["gain_changes"]
    assert [(e["applied"], e["new"][0]) for e in events] == [(True, 35.0)], events
    assert report["gains"][0] == 35.0
    assert report["plant_end_reason"].startswith("estop"), out + err


SLOW_LAW = '''
import time


class Slow:
    """Balances nothing; takes 8 ms per control, where the budget at 100 Hz is 5.5 ms."""
    def __init__(self, gains, **context):
        pass

    def compute(self, state, t):
        time.sleep(0.008)
        return 0.0
'''


def test_a_law_slower_than_its_budget_is_named_with_by_how_much(tmp_path: Path,
                                                               endpoint: str) -> None:
    (tmp_path / "slow.py").write_text(SLOW_LAW)
    (tmp_path / "slow.yaml").write_text(
        'run: {mode: realtime, rate_hz: 100, duration_s: 1}\n'
        'controller: {name: "slow:Slow", connect_timeout_s: 60}\n'
        'record: {history_db: null, html: false}\n')
    done = hil(tmp_path, "run", "--config", "slow.yaml", "--endpoint", endpoint,
               "--out", "out")
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    timing = report["law_timing"]
    # The budget: the part of the 10 ms period between the controller's wake-up (phase
    # offset 0.3) and the guard (0.15) before the plant's next tick.
    assert timing["law"] == "slow:Slow" and timing["budget_us"] == 5500.0
    assert timing["too_slow"] is True
    assert timing["compute_p99_us"] >= 8000  # sleep(0.008) takes at least 8 ms
    assert timing["over_by_us"] == pytest.approx(timing["compute_p99_us"] - 5500.0, abs=0.1)
    assert report["latency_us"]["compute"]["p50"] >= 8000
    assert (f"control law slow:Slow is too slow: compute p99 {timing['compute_p99_us']:.0f} us "
            f"> budget 5500 us by {timing['over_by_us']:.0f} us") in done.stderr


def test_a_lockstep_state_that_comes_during_the_clock_sync_is_answered(
        tmp_path: Path, endpoint: str) -> None:
    """A lockstep plant publishes its first state soon after the welcome; if the controller
    is still in its clock-sync round trips (a loaded machine, a slow link), that state comes
    during the sync. The sync used to drop every message but its reply: the plant waited for
    a control that never came and the controller gave up ("plant silent for 500 ms"), as seen
    in hil run under load."""
    from controller_client.controllers import create_controller
    from controller_client.loop import ControllerLoop, LoopSettings
    from hil.link.transport import ControllerSocket

    cfg = tmp_path / "plant.yaml"
    cfg.write_text("run: {mode: lockstep, duration_s: 0.2, start_delay_ms: 0}\n"
                   "record: {enabled: false}\n")
    plant = subprocess.Popen([sys.executable, "-m", "plant_server.main", "--config", str(cfg),
                              "--endpoint", endpoint, "--out", str(tmp_path)], env=ENV,
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    class SlowSyncSocket(ControllerSocket):
        """A link slow during the clock sync (10 ms per sync request, as under load): the
        16 round trips outlast the plant's first lockstep state."""

        def send(self, payload: bytes) -> bool:
            if msgpack.unpackb(payload)[0] == "sync":
                time.sleep(0.01)
            return super().send(payload)

    law = create_controller("lqr")
    sock = SlowSyncSocket(endpoint)
    loop = ControllerLoop(law, sock, LoopSettings(phase_offset=0.3, spin_ns=0,
                                                  connect_timeout_ns=60_000_000_000,
                                                  plant_timeout_ns=2_000_000_000),
                          structlog.get_logger())
    try:
        reason = loop.run()
        loop.send_bye()
    finally:
        sock.close()
        _, err = plant.communicate(timeout=60)
    assert reason == "plant ended the run: duration", err
    # Every state answered, the first too (and the final state, which the plant ignores).
    assert loop.report()["controls_sent"] == 201
    assert json.loads((tmp_path / "plant.json").read_text())["controls_applied"] == 200
