"""A plant with two inputs, written outside the package, run end to end by `hil run`.

A planar bicopter (two thrusts, 0..30 N each) in a lab's own folder, held at a hover set point
by a pure-Python law of the lab's returning two numbers, in lockstep and in realtime over both
transports; the built-in `lqr` holds it too, with and without a declared trim. Every artefact
names both inputs: the recordings, the CSV and MCAP exports and report.html.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_passed_but_timing, free_endpoint
from mcap.reader import make_reader
from runs_together import run_together

from hil.recording.recorder import read_recording

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
HIL = [sys.executable, "-m", "hil.cli"]
INPUTS = ("thrust_left", "thrust_right")

PLANT = '''
import numpy as np


class Bicopter:
    """A planar bicopter: x right, z up, phi its roll (+ tilts the thrust toward -x)."""

    state_names = ("x", "z", "phi", "x_dot", "z_dot", "phi_dot")
    state_units = ("m", "m", "rad", "m/s", "m/s", "rad/s")
    input_names = ("thrust_left", "thrust_right")
    input_units = ("N", "N")
    input_limits = ((0.0, 30.0), (0.0, 30.0))
    equilibrium = (0.0, 1.0, 0.0, 0.0, 0.0, 0.0)

    def __init__(self, mass_kg=1.5, arm_m=0.2, inertia_kgm2=0.015, gravity_mps2=9.81,
                 declare_trim=False):
        self.m, self.l, self.j, self.g = mass_kg, arm_m, inertia_kgm2, gravity_mps2
        if declare_trim:
            self.equilibrium_input = (mass_kg * gravity_mps2 / 2,) * 2

    def derivatives(self, state, u):
        x, z, phi, vx, vz, w = state
        total = u[0] + u[1]
        return np.array([vx, vz, w, -total * np.sin(phi) / self.m,
                         total * np.cos(phi) / self.m - self.g,
                         self.l * (u[1] - u[0]) / self.j])
'''

LAW = '''
import math


class Hover:
    """Cascaded PD: height by the total thrust, x by the roll it asks of an inner roll loop."""

    def __init__(self, gains, **context):
        self.m, self.l, self.j, self.g = 1.5, 0.2, 0.015, 9.81

    def compute(self, state, t):
        x, z, phi, vx, vz, w = state
        total = self.m * (self.g + 6.0 * (1.0 - z) - 5.0 * vz) / math.cos(phi)
        phi_wanted = -(2.0 * (0.0 - x) - 2.5 * vx) / self.g
        torque = self.j * (120.0 * (phi_wanted - phi) - 22.0 * w)
        half = torque / (2.0 * self.l)
        return [total / 2 - half, total / 2 + half]
'''


def lab(folder: Path, controller: str, *, declare_trim: bool = False) -> Path:
    """The lab's folder: its plant, its law, and a config naming both."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bicopter.py").write_text(PLANT)
    (folder / "hover.py").write_text(LAW)
    config = folder / "bicopter.yaml"
    config.write_text(
        f"controller: {{name: {json.dumps(controller)}}}\n"
        "plant:\n"
        "  model: bicopter:Bicopter\n"
        f"  params: {{declare_trim: {str(declare_trim).lower()}}}\n"
        "  initial_state: [0.1, 0.9, 0.05, 0.0, 0.0, 0.0]\n"
        "run: {duration_s: 4.0}\n")
    return config


def _argv(config: Path, mode: str, transport: str) -> list[str]:
    return [*HIL, "run", "--config", str(config), "--mode", mode, "--out",
            str(config.parent / "out"), "--set", f"run.transport={transport}",
            # A loaded machine can stall a process past the default 20 ms: the watchdog's
            # own behaviour is tested in tests/faults.
            "--set", "plant.watchdog_timeout_ms=250",
            # Three runs start at once below: nine processes on this 2-core machine.
            "--set", "controller.connect_timeout_s=60", "--endpoint", free_endpoint()]


def _report(config: Path) -> dict:
    path = config.parent / "out" / "report.json"
    return json.loads(path.read_text()) if path.exists() else {}


def hil_run(config: Path, mode: str, transport: str) -> tuple[subprocess.CompletedProcess[str],
                                                             dict]:
    done = subprocess.run(_argv(config, mode, transport), cwd=config.parent, env=ENV,
                          capture_output=True, text=True, timeout=180)
    return done, _report(config)


Run = tuple[Path, subprocess.CompletedProcess[str], dict]


@pytest.fixture(scope="module")
def lockstep_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """The module's three lockstep runs, started together (lockstep does not care how the
    runs share the machine; the realtime run below runs alone): the lab's law over shared
    memory, and the built-in lqr with the trim declared and without. {name: (the lab's
    folder, hil run's result, report.json)}."""
    folder = tmp_path_factory.mktemp("labs")
    configs = {"hover": (lab(folder / "hover", "hover:Hover"), "shm"),
               "declared": (lab(folder / "declared", "lqr", declare_trim=True), "zmq"),
               "found": (lab(folder / "found", "lqr", declare_trim=False), "zmq")}
    done = run_together([_argv(config, "lockstep", transport)
                         for config, transport in configs.values()],
                        [config.parent for config, _ in configs.values()], ENV)
    return {name: (config.parent, result, _report(config))
            for (name, (config, _)), result in zip(configs.items(), done, strict=True)}


def gate(report: dict, name: str) -> dict:
    return next(g for g in report["gates"] if g["name"] == name)


@pytest.mark.slow
# Each mode and each transport once: how a vector control crosses each transport and each
# mode's loop is tested without a process start-up in tests/hil/link and tests/plant_server.
@pytest.mark.parametrize(("mode", "transport"), [("lockstep", "shm"), ("realtime", "zmq")])
def test_the_labs_two_input_plant_hovers_under_its_own_law(
        tmp_path: Path, request: pytest.FixtureRequest, mode: str, transport: str) -> None:
    if mode == "lockstep":  # the module's lockstep run, over shared memory
        folder, done, report = request.getfixturevalue("lockstep_runs")["hover"]
        assert report.get("verdict") == "PASS", done.stdout + done.stderr
        assert report["config"]["run"]["transport"] == transport
    else:  # this shared machine may take a realtime run's deadlines; nothing else may fail
        folder = tmp_path
        done, report = hil_run(lab(folder, "hover:Hover"), mode, transport)
        assert report, done.stdout + done.stderr
        assert_passed_but_timing(report)
    target = gate(report, "at_target")
    # Positions and the angle are regulated, not the rates; each ended at its target.
    assert [s["name"] for s in target["states"]] == ["x", "z", "phi"]
    assert all(s["error"] < s["tolerance"] for s in target["states"])
    plant = read_recording(folder / "out" / "plant.rec")
    controller = read_recording(folder / "out" / "controller.rec")
    for rec in (plant, controller):
        assert [rec.units[name] for name in INPUTS] == ["N", "N"]
        assert "force_n" not in rec
    # Hovering: each thrust near the trim m g / 2 at the end, and the two differ on the way
    # (the roll loop steers with the difference).
    tail = slice(-200, None)
    for name in INPUTS:
        np.testing.assert_allclose(plant[name][tail].mean(), 1.5 * 9.81 / 2, rtol=0.02)
    assert np.abs(plant["thrust_left"] - plant["thrust_right"]).max() > 0.05


def lqr_run(run: Run) -> tuple[Path, dict]:
    """A lockstep run of the built-in lqr on the lab's bicopter: it PASSes, with the trim."""
    folder, done, report = run
    assert report.get("verdict") == "PASS", done.stdout + done.stderr
    # Declared or found by the runtime, the trim is m g / 2 per thrust.
    np.testing.assert_allclose(report["plant"]["equilibrium_input"], [1.5 * 9.81 / 2] * 2,
                               rtol=1e-6)
    out = folder / "out"
    np.testing.assert_allclose(read_recording(out / "plant.rec")["z"][-1], 1.0, atol=0.02)
    return out, report


@pytest.mark.slow
def test_the_builtin_lqr_holds_the_labs_plant_with_its_declared_trim(
        lockstep_runs: dict[str, Run]) -> None:
    _, report = lqr_run(lockstep_runs["declared"])
    assert report["config"]["plant"]["params"] == {"declare_trim": True}


@pytest.mark.slow
def test_lqr_finds_the_trim_itself_and_exports_and_report_show_both_inputs_by_name(
        lockstep_runs: dict[str, Run]) -> None:
    out, report = lqr_run(lockstep_runs["found"])
    assert report["config"]["plant"]["params"] == {"declare_trim": False}
    for fmt in ("csv", "mcap"):
        exported = subprocess.run([*HIL, "export", str(out), "--format", fmt], env=ENV,
                                  capture_output=True, text=True, timeout=120)
        assert exported.returncode == 0, exported.stderr
    with (out / "plant.csv").open() as f:
        header = next(csv.reader(f))
    assert header[9:11] == ["thrust_left [N]", "thrust_right [N]"], header
    fields: set[str] = set()
    with (out / "run.mcap").open("rb") as f:
        for _, _, message in make_reader(f).iter_messages():
            data = json.loads(message.data)
            fields |= set(data) | {k for v in data.values() if isinstance(v, dict) for k in v}
    assert set(INPUTS) <= fields, sorted(fields)
    html = (out / "report.html").read_text()
    assert all(name in html for name in INPUTS)
    assert math.isfinite(gate(report, "at_target")["value"])
