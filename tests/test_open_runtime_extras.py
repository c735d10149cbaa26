"""The open runtime's finer points: `hil gains` through a junk flood, a plant model's numba
`derivatives_kernel`, gain-change markers on the report's plots.

Real sockets and a real plant server for the flood; the model loaded from a file beside its
YAML as a lab would; the plots drawn by the report writer from a run folder.
"""

from __future__ import annotations

import json
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
        server._drain()


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
            server._stranger_left = BUDGET  # what each realtime tick does
            before = counts.get("over_budget", 0)
            for i in range(100):
                stranger.send(msgpack.packb(["self_destruct", i]))
            _drain(server, lambda b=before: counts.get("over_budget", 0) == b + 100 - BUDGET)
            assert server._stranger_left == 0  # the budget is spent: strangers go unread
            answers: list[Any] = []
            asker = threading.Thread(target=lambda r=request, a=answers: a.append(
                operator.gains(endpoint, [], r, timeout_s=5.0)))
            asker.start()
            relayed = None
            give_up = time.monotonic() + 6
            while asker.is_alive() and time.monotonic() < give_up:
                server.sock.sock.poll(10)
                server._drain()
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
    fig = html_report._trajectory_figure(plant, plant["sim_time_s"], ("force", "N", 150.0),
                                         [0.5, 1.5])
    for ax in fig.axes:
        marks = [line.get_xdata()[0] for line in ax.get_lines()
                 if line.get_color() == html_report.GAIN_MARK_COLOR]
        assert marks == [0.5, 1.5]
    # Without changes, no marks.
    del report["gain_changes"]
    (run / "report.json").write_text(json.dumps(report))
    html_report.write_html_report(run)
    assert len(_purple_columns(run / "trajectories.png")) == 0
