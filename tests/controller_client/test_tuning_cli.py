"""`hil tune` as a user runs it: real processes, a real Dask scheduler and workers on loopback
(the session's, tests/conftest.py's `dask_cluster`: it starts beside the first tuning here,
and the sweep's Dask test uses it too)."""

from __future__ import annotations

import argparse
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import termios
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cloudpickle
import numpy as np
import pytest
import yaml
from conftest import free_port
from distributed.diagnostics.plugin import WorkerPlugin
from tuning_plugins import write_plugins

from hil.cli.tune import CONNECT_TIMEOUT_S, add_arguments
from hil.config import load_config
from hil.reporting.history import list_runs

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]
SMALL = {"tuning": {"duration_s": 0.4, "batch_size": 6}}
# The settings of every tuning here that runs to the end (10 batches of 6): the local answer,
# the interrupted one, the two on Dask. A batch takes some 25 ms, so the interrupted run still
# has most of its batches to go when the test's SIGINT arrives.
ARGS = ["--budget", "60", "--draws", "2", "--seed", "5"]


def tune(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "hil"), "tune", *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


# A lab's own plant and law (tests/controller_client/tuning_plugins.py), both in Python.
LAB = {"run": {"rate_hz": 200, "duration_s": 4, "mode": "lockstep"},
       "plant": {"model": "labcart:Cart", "initial_state": [0.0, 0.1, 0.0, 0.0]},
       "controller": {"name": "lablaw:Balance"}, "record": {"history_db": None},
       "tuning": {"duration_s": 3.0, "batch_size": 8}}
LAB_ARGS = ["--budget", "32", "--draws", "2", "--seed", "1"]


def run_lockstep(config: Path, out: Path, *more: str) -> dict:
    """`hil run` of `config` through the real processes, lockstep; its report."""
    done = subprocess.run([str(BIN / "hil"), "run", "--config", str(config), "--mode",
                           "lockstep", "--set", "record.html=false", "--out", str(out), *more],
                          capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0 and "verdict: PASS" in done.stdout, done.stdout + done.stderr
    return json.loads((out / "report.json").read_text())


@pytest.fixture(scope="module")
def lab_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = write_plugins(tmp_path_factory.mktemp("lab")) / "lab.yaml"
    path.write_text(yaml.safe_dump(LAB))
    return path


@pytest.fixture(scope="module")
def lab_answer(lab_config: Path) -> tuple[Tuned, str]:
    """The lab's law tuned on the lab's plant from the command line, on 2 processes."""
    out = lab_config.parent / "local"
    done = tune("--config", str(lab_config), *LAB_ARGS, "--workers", "2", "--out", str(out))
    assert done.returncode in (0, 1), done.stderr
    return Tuned(done.returncode, json.loads((out / "tuning.json").read_text()), out,
                 out / "none.db"), done.stderr


@pytest.fixture(scope="module")
def small_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "small.yaml"
    path.write_text(yaml.safe_dump(SMALL))
    return path


@dataclass(frozen=True)
class Tuned:
    status: int
    record: dict
    out: Path
    db: Path


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory, small_config: Path):
    """The uninterrupted local tuning with ARGS, started (`local_answer` waits for it), so
    that the Dask cluster can start up meanwhile."""
    tmp = tmp_path_factory.mktemp("local")
    out, db = tmp / "local", tmp / "h.db"
    proc = subprocess.Popen([str(BIN / "hil"), "tune", "--config", str(small_config), *ARGS,
                             "--db", str(db), "--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        yield proc, out, db
    finally:
        if proc.poll() is None:  # a test failed before waiting for it
            proc.kill()
            proc.communicate()


@pytest.fixture(scope="module")
def local_answer(local_run) -> Tuned:
    """The local tuning, done: the files it writes are checked once, and the interrupted then
    resumed and the Dask tunings must give exactly its answer."""
    proc, out, db = local_run
    _, err = proc.communicate(timeout=240)
    assert proc.returncode in (0, 1), err
    return Tuned(proc.returncode, json.loads((out / "tuning.json").read_text()), out, db)


@pytest.mark.parametrize(("args", "reason"), [
    (["--controller", "pid"], "unknown controller 'pid'"),
    (["--budget", "0"], "--budget must be >= 1"),
    (["--draws", "0"], "--draws must be >= 1"),
    (["--uncertainty", "0.7"], r"--uncertainty must be within [0, 0.5]"),
    (["--workers", "0"], "--workers must be >= 1"),
    (["--connect-timeout", "0"], "--connect-timeout must be a number of seconds > 0"),
])
def test_bad_input_exits_2_with_the_reason_before_any_work(tmp_path: Path, args: list[str],
                                                           reason: str) -> None:
    out = tmp_path / "out"
    r = tune(*args, "--out", str(out), timeout=60)
    assert r.returncode == 2, r.stderr
    assert reason in r.stderr
    assert not out.exists()


@pytest.mark.parametrize(("out", "said"), [
    ("/proc/no-such-tuning", "--out /proc/no-such-tuning: cannot make the folder"),
    ("{file}", "a file, not a folder"),
])
def test_an_out_folder_that_cannot_be_made_exits_2_naming_it(tmp_path: Path, out: str,
                                                            said: str) -> None:
    (tmp_path / "a-file").write_text("")
    r = tune("--budget", "2", "--out", out.format(file=tmp_path / "a-file"), timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.splitlines() == [r.stderr.strip()] and said in r.stderr, r.stderr


def test_bounds_the_law_refuses_exit_2_naming_the_gain(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"tuning": {"bounds": {"K": [-5.0, 10.0]}}}))
    r = tune("--config", str(config), "--out", str(tmp_path / "o"), timeout=60)
    assert r.returncode == 2
    assert "lower bounds" in r.stderr and "gain K" in r.stderr and "tuning.bounds" in r.stderr


@pytest.mark.parametrize(("plant", "reason"), [
    ({"model": "cartpole", "initial_state": [0.0, 0.1, 0.0, 0.0]},
     "classical_smc is designed for plant model dip"),
    ({"model": "cartpole"}, "plant.initial_state: model 'cartpole' has 4 states"),
    ({"model": "nolab:Plant", "initial_state": [0.0]}, "module 'nolab' not found"),
])
def test_a_plant_the_law_or_the_config_does_not_fit_exits_2_naming_why(
        tmp_path: Path, plant: dict, reason: str) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"plant": plant}))
    r = tune("--config", str(config), "--out", str(tmp_path / "o"), timeout=60)
    assert r.returncode == 2, r.stderr
    assert reason in r.stderr
    assert not (tmp_path / "o").exists()


def test_unreachable_scheduler_exits_3_naming_the_address_within_the_connect_timeout(
        tmp_path: Path) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    r = tune("--scheduler", address, "--connect-timeout", "1", "--budget", "6", "--out",
             str(tmp_path / "o"), timeout=60)
    assert r.returncode == 3, r.stderr
    assert address in r.stderr and "within 1 s" in r.stderr
    # The connection attempt, timed by the process itself, waits the timeout and then gives
    # up, within 2 s of it...
    gave_up_s = float(re.search(r"gave up after ([0-9.]+) s", r.stderr).group(1))
    assert 1.0 <= gave_up_s <= 1.0 + 2.0, r.stderr
    # ...and the whole command adds only its start-up (imports, slower on a loaded machine).
    assert time.monotonic() - t0 < gave_up_s + 30.0


def test_by_default_an_unreachable_scheduler_fails_within_10_s() -> None:
    """The default timeout (not waited for here) plus the 2 s allowed above stays in 10 s."""
    from controller_client.tuning.command import connect_timeout

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    default = connect_timeout(parser.parse_args(["--scheduler", "tcp://127.0.0.1:8786"]))
    assert default == CONNECT_TIMEOUT_S and default + 2.0 <= 10.0
    assert f"(default {default:g})" in " ".join(
        tune("--help", timeout=60).stdout.split())


# Workers load the compiled batch from numba's disk cache (the law kernel enters it as a
# cfunc, so the cache matches across processes; the local run above fills it on a cold
# machine), so a remote tuning costs seconds, not a compile per worker.
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_dask_cluster_of_two_workers_gives_the_local_answer(
        tmp_path: Path, small_config: Path, dask_cluster: str, local_answer: Tuned,
        lab_config: Path, lab_answer: tuple[Tuned, str]) -> None:
    """The DIP's compiled batch, and a lab's Python law on a lab's Python plant (the
    workers import both from the config's folder): the local answers exactly."""
    remote = tune("--config", str(small_config), *ARGS, "--db", str(tmp_path / "h.db"),
                  "--scheduler", dask_cluster, "--out", str(tmp_path / "remote"))
    assert remote.returncode == local_answer.status, remote.stderr
    b = json.loads((tmp_path / "remote" / "tuning.json").read_text())
    assert b["workers"] == 2
    assert b["history"] == local_answer.record["history"]
    assert b["best_gains"] == local_answer.record["best_gains"]
    lab = tune("--config", str(lab_config), *LAB_ARGS, "--scheduler", dask_cluster, "--out",
               str(tmp_path / "lab"))
    local = lab_answer[0].record
    assert lab.returncode == lab_answer[0].status, lab.stderr
    c = json.loads((tmp_path / "lab" / "tuning.json").read_text())
    assert c["workers"] == 2 and c["history"] == local["history"]
    assert c["best_gains"] == local["best_gains"] and c["held_out"] == local["held_out"]


class ParkOnThirdTask(WorkerPlugin):
    """On the first worker that starts its third tuning task (a batch after the first): write
    the worker's pid to `marker` and keep the task there (state executing, at most 120 s),
    so that the test SIGKILLs a worker that holds a batch. One worker in the cluster, once
    (the claim file is created exclusively)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker
        self.started = 0

    def transition(self, key, start, finish, **kwargs) -> None:
        if finish != "executing" or not str(key).startswith("evaluate_rows"):
            return
        self.started += 1
        if self.started < 3:
            return
        try:
            os.close(os.open(self.marker + ".claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
        with open(self.marker + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.replace(self.marker + ".tmp", self.marker)
        threading.Event().wait(120.0)  # parked holding the task: the test kills us here


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_worker_killed_holding_a_batch_loses_no_evaluation(tmp_path: Path,
                                                             small_config: Path,
                                                             dask_cluster: str,
                                                             local_answer: Tuned) -> None:
    address, a = dask_cluster, local_answer.record
    marker = tmp_path / "parked.pid"
    from distributed import Client

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with Client(address, timeout="30s") as client:
        client.register_plugin(ParkOnThirdTask(str(marker)), name=f"park-{tmp_path.name}")
        try:
            proc = subprocess.Popen(
                [str(BIN / "hil"), "tune", "--config", str(small_config), *ARGS, "--db",
                 str(tmp_path / "h.db"), "--scheduler", address, "--out",
                 str(tmp_path / "remote")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True)
            deadline = time.monotonic() + 120
            while not marker.exists():  # a worker holds a batch
                assert proc.poll() is None, proc.communicate()[1]
                assert time.monotonic() < deadline, "no worker started a third task"
                time.sleep(0.02)
            pid = int(marker.read_text())
            os.kill(pid, signal.SIGKILL)
            while alive(pid):
                assert time.monotonic() < deadline, f"worker {pid} survived SIGKILL"
                time.sleep(0.02)
            _, err = proc.communicate(timeout=120)
        finally:
            client.unregister_worker_plugin(f"park-{tmp_path.name}")
    assert proc.returncode == local_answer.status, err
    b = json.loads((tmp_path / "remote" / "tuning.json").read_text())
    assert b["evaluations"] == 60 and b["complete"], err
    assert b["history"] == a["history"]  # every evaluation of every batch, in order
    assert b["best_gains"] == a["best_gains"] and b["best_cost"] == a["best_cost"]


def test_tuning_writes_its_files_a_history_row_and_refuses_to_overwrite(
        local_answer: Tuned) -> None:
    out, record = local_answer.out, local_answer.record
    for key in ("best_gains", "best_cost", "baseline_cost", "evaluations", "optimizer", "seed",
                "draws", "workers", "held_out"):
        assert key in record
    assert record["evaluations"] == 60 and record["complete"]
    assert record["held_out"]["tuned_better"] == (local_answer.status == 0)
    config = load_config(out / "tuned.yaml")
    assert config.controller.gains == [record["best_gains"][n] for n in record["gain_names"]]
    assert "tuning.html" in os.listdir(out)
    for plot in ("convergence.png", "costs.png", "worst_draw.png"):
        assert (out / plot).stat().st_size > 0
    runs = list_runs(local_answer.db)
    assert runs[0]["mode"] == "tune" and runs[0]["controller"] == "classical_smc"
    before = (out / "tuning.json").read_bytes()
    again = tune("--out", str(out), timeout=60)
    assert again.returncode == 2 and f"--resume {out}" in again.stderr
    assert (out / "tuning.json").read_bytes() == before


def held_terminal() -> tuple[int, int]:
    """(master, slave) of a pseudo-terminal whose output is held, as after Ctrl-S on a real
    one: a program writing to the slave blocks until Ctrl-Q (written to the master)."""
    master, slave = pty.openpty()
    attrs = termios.tcgetattr(slave)
    attrs[0] |= termios.IXON
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    os.write(master, b"\x13")  # Ctrl-S
    # The line discipline takes the key asynchronously: wait until a write would block.
    os.set_blocking(slave, False)
    deadline = time.monotonic() + 10
    try:
        while True:
            assert time.monotonic() < deadline, "the terminal never held its output"
            try:
                os.write(slave, b"\0")
            except BlockingIOError:
                break
            time.sleep(0.001)
    finally:
        os.set_blocking(slave, True)
    return master, slave


def read_until_closed(fd: int, deadline: float) -> str:
    """Everything a terminal master gets until the last writer closes its slave."""
    chunks = []
    while time.monotonic() < deadline:
        if not select.select([fd], [], [], 0.5)[0]:
            continue
        try:
            data = os.read(fd, 65536)
        except OSError:  # EIO: no process holds the slave any more
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks).decode(errors="replace").replace("\0", "")


@pytest.mark.slow
def test_interrupted_then_resumed_equals_uninterrupted(tmp_path: Path, small_config: Path,
                                                       local_answer: Tuned) -> None:
    """Ctrl-C on a terminal while the progress line of the first batch is held (Ctrl-S):
    the handler is in place (the batch's checkpoint is written) and the tuning cannot go on,
    so it stops after exactly that batch; the resumed tuning ends where the local one did."""
    common = ["--config", str(small_config), *ARGS, "--db", str(tmp_path / "h.db")]
    part_dir = tmp_path / "part"
    master, slave = held_terminal()
    try:
        proc = subprocess.Popen([str(BIN / "hil"), "tune", *common, "--out", str(part_dir)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave,
                                text=True)
        os.close(slave)
        deadline = time.monotonic() + 120
        while not (part_dir / "tuning.json").exists():  # the first batch's checkpoint
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "no checkpoint: did the tuning write to its " \
                "terminal (held) before the first batch?"
            time.sleep(0.005)
        proc.send_signal(signal.SIGINT)
        os.write(master, b"\x11")  # Ctrl-Q: the progress line goes out, the tuning goes on
        err = read_until_closed(master, deadline)
        proc.communicate(timeout=120)
    finally:
        os.close(master)
    assert proc.returncode == 130, err
    assert "6/60 evaluations" in err and f"--resume {part_dir}" in err
    partial = json.loads((part_dir / "tuning.json").read_text())
    assert partial["evaluations"] == 6 and not partial["complete"]
    assert (part_dir / "tuned.yaml").exists()
    resumed = tune("--resume", str(part_dir))
    assert resumed.returncode == local_answer.status, resumed.stderr
    a = local_answer.record
    b = json.loads((part_dir / "tuning.json").read_text())
    assert b["complete"] and b["evaluations"] == 60
    assert b["history"] == a["history"]
    assert b["best_gains"] == a["best_gains"] and b["best_cost"] == a["best_cost"]


def test_the_new_controller_scaffold_is_tuned_in_a_box_that_keeps_each_gain_s_sign(
        tmp_path: Path) -> None:
    """`hil new controller`'s law has negative gains: half to twice each, as it was, made
    boxes with low > high and hil tune refused the scaffold's own defaults."""
    made = subprocess.run([str(BIN / "hil"), "new", "controller", "mylaw"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    config = tmp_path / "mylaw.yaml"
    config.write_text(config.read_text() + "record: {history_db: null}\n"
                      + yaml.safe_dump({"tuning": {"duration_s": 0.4, "batch_size": 4}}))
    done = subprocess.run([str(BIN / "hil"), "tune", "--config", str(config), "--budget", "4",
                           "--draws", "1", "--out", str(tmp_path / "t")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode in (0, 1), done.stderr  # tuned, better or not: not refused (2)
    settings = json.loads((tmp_path / "t" / "tuning.json").read_text())["settings"]
    defaults = (31.62, -633.6, 945.1, 46.97, -8.545, 131.2)
    assert settings["lower"] == [min(0.5 * g, 2 * g) for g in defaults]
    assert settings["upper"] == [max(0.5 * g, 2 * g) for g in defaults]


def test_a_law_under_tuning_gets_the_plant_and_model_hil_run_gives_it(tmp_path: Path) -> None:
    """The law is built with the run's context: the plant's description and its nominal
    model (with plant.params), not None; a law that needs them is tuned, not crashed."""
    (tmp_path / "needs_model.py").write_text(
        "class Law:\n"
        "    gain_names = ('k',)\n"
        "    default_gains = (1.0,)\n"
        "    def __init__(self, gains, model=None, plant=None, **context):\n"
        "        if model is None or plant is None:\n"
        "            raise ValueError('this law needs the plant model')\n"
        "        self.k, self.mass = gains[0], model.params.cart_mass_kg\n"
        "        assert plant['params']['cart_mass_kg'] == self.mass == 2.5\n"
        "    def compute(self, state, t):\n"
        "        return -self.k * self.mass * float(state[0])\n")
    config = tmp_path / "lab.yaml"
    config.write_text(yaml.safe_dump({
        "controller": {"name": "needs_model:Law"}, "plant": {"params": {"cart_mass_kg": 2.5}},
        "record": {"history_db": None}, "tuning": {"duration_s": 0.2, "batch_size": 2}}))
    done = subprocess.run([str(BIN / "hil"), "tune", "--config", str(config), "--budget", "2",
                           "--draws", "1", "--out", str(tmp_path / "t")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode in (0, 1), done.stderr  # tuned, better or not: not refused
    assert json.loads((tmp_path / "t" / "tuning.json").read_text())["settings"]["controller"] \
        == "needs_model:Law"


@pytest.mark.slow
def test_a_lab_s_own_plant_and_law_are_tuned_beat_their_defaults_and_pass_in_hil_run(
        lab_answer: tuple[Tuned, str], tmp_path: Path) -> None:
    """Both written outside the package; the law is Python only, so the tuning says what it
    will cost first; the tuned gains are better on held-out draws, and `hil run` of
    tuned.yaml (the real processes, lockstep) passes and ends where the tuning's own
    simulation of the nominal plant ends."""
    answer, stderr = lab_answer
    record = answer.record
    assert answer.status == 0 and record["held_out"]["tuned_better"], stderr
    assert "lablaw:Balance has no compiled form: simulated in Python at" in stderr
    assert record["held_out"]["tuned_cost"] < 0.8 * record["held_out"]["baseline_cost"]
    assert record["held_out"]["tuned_failed_draws"] == 0
    assert record["settings"]["plant_model"] == "labcart:Cart" and record["workers"] == 2
    report = run_lockstep(answer.out / "tuned.yaml", tmp_path / "run")
    tuned = [record["best_gains"][n] for n in record["gain_names"]]
    assert report["gains"] == tuned or list(report["gains"].values()) == tuned
    import dataclasses

    from controller_client.tuning.batch import trajectory
    from controller_client.tuning.engine import Problem
    from controller_client.tuning.problem import Settings

    nominal = dataclasses.replace(Settings.from_dict(record["settings"]), uncertainty=0.0,
                                  duration_s=report["duration_s"])
    problem = Problem(nominal, None)
    _, states, _ = trajectory(problem.make_law, tuned, problem.train, 0)
    assert report["cycles"] == len(states)
    np.testing.assert_allclose(report["final_state"], states[-1], rtol=1e-9, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["rotary", "cartpole"])
def test_the_built_in_plants_configs_tune_and_the_tuned_gains_pass(name: str,
                                                                    tmp_path: Path) -> None:
    config = yaml.safe_load((ROOT / "configs" / f"{name}.yaml").read_text())
    config.update(record={"history_db": None}, tuning={"duration_s": 1.0, "batch_size": 6},
                  experiment={})  # an empty experiment: simulated (nothing), kept for hil run
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    done = tune("--config", str(path), "--budget", "12", "--draws", "2", "--out",
                str(tmp_path / "t"))
    assert done.returncode in (0, 1), done.stderr
    record = json.loads((tmp_path / "t" / "tuning.json").read_text())
    assert record["settings"]["plant_model"] == name and record["controller"] == "lqr"
    assert record["failed_draws"]["tuned"] == 0 and "no compiled form" not in done.stderr
    assert load_config(tmp_path / "t" / "tuned.yaml").experiment is not None
    run_lockstep(tmp_path / "t" / "tuned.yaml", tmp_path / "run", "--duration", "3")


def test_a_degenerate_box_is_refused_naming_the_gain(lab_config: Path, tmp_path: Path) -> None:
    done = tune("--config", str(lab_config), "--bounds=k_x=2,2", "--out", str(tmp_path / "t"),
                timeout=60)
    assert done.returncode == 2
    assert "bounds of gain k_x must have low < high, got [2.0, 2.0]" in done.stderr
    assert not (tmp_path / "t").exists()


@pytest.mark.slow
def test_an_fmu_plant_is_tuned_through_its_own_step(tmp_path: Path) -> None:
    """plant.model fmu (the example cart-pole FMU, built here as tests/fmu does): the LQR's
    weights tuned on draws of its plant.params, stepped in Python through the FMU."""
    sys.path.insert(0, str(ROOT / "tests" / "fmu"))
    try:
        from fmubuild import build_example
    finally:
        sys.path.remove(str(ROOT / "tests" / "fmu"))
    fmu = build_example(tmp_path)
    config = tmp_path / "fmu.yaml"
    config.write_text(yaml.safe_dump({
        "run": {"mode": "lockstep", "rate_hz": 500},
        "plant": {"model": "fmu", "fmu": fmu.name, "initial_state": [0.0, 0.1, 0.0, 0.0],
                  "params": {"pole_mass_kg": 0.1, "cart_friction_nspm": 0.1}},
        "controller": {"name": "lqr"}, "record": {"history_db": None},
        "tuning": {"duration_s": 1.0, "batch_size": 4}}))
    done = tune("--config", str(config), "--budget", "8", "--draws", "2", "--out",
                str(tmp_path / "t"))
    assert done.returncode == 0, done.stderr
    assert "the plant fmu is stepped through its Python model.step" in done.stderr
    record = json.loads((tmp_path / "t" / "tuning.json").read_text())
    assert record["settings"]["plant_fmu"] == str(fmu) and record["held_out"]["tuned_better"]
    assert load_config(tmp_path / "t" / "tuned.yaml").plant.model == "fmu"
