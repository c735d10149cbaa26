"""`hil tune` as a user runs it: real processes, a real Dask scheduler and workers on loopback."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import cloudpickle
import pytest
import yaml
from distributed.diagnostics.plugin import WorkerPlugin

from hil.config import load_config
from hil.reporting.history import list_runs

BIN = Path(sys.executable).parent
SMALL = {"tuning": {"duration_s": 0.4, "batch_size": 6}}


def tune(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "hil"), "tune", *args], capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture
def small_config(tmp_path: Path) -> Path:
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(SMALL))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(("args", "reason"), [
    (["--controller", "pid"], "unknown controller 'pid'"),
    (["--budget", "0"], "--budget must be >= 1"),
    (["--draws", "0"], "--draws must be >= 1"),
    (["--uncertainty", "0.7"], r"--uncertainty must be within [0, 0.5]"),
    (["--workers", "0"], "--workers must be >= 1"),
])
def test_bad_input_exits_2_with_the_reason_before_any_work(tmp_path: Path, args: list[str],
                                                           reason: str) -> None:
    out = tmp_path / "out"
    r = tune(*args, "--out", str(out), timeout=60)
    assert r.returncode == 2, r.stderr
    assert reason in r.stderr
    assert not out.exists()


def test_bounds_the_law_refuses_exit_2_naming_the_gain(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"tuning": {"bounds": {"K": [-5.0, 10.0]}}}))
    r = tune("--config", str(config), "--out", str(tmp_path / "o"), timeout=60)
    assert r.returncode == 2
    assert "lower bounds" in r.stderr and "gain K" in r.stderr and "tuning.bounds" in r.stderr


def test_tuning_writes_its_files_a_history_row_and_refuses_to_overwrite(
        tmp_path: Path, small_config: Path) -> None:
    out, db = tmp_path / "t", tmp_path / "h.db"
    r = tune("--config", str(small_config), "--budget", "12", "--draws", "2", "--out",
             str(out), "--db", str(db))
    assert r.returncode in (0, 1), r.stderr
    record = json.loads((out / "tuning.json").read_text())
    for key in ("best_gains", "best_cost", "baseline_cost", "evaluations", "optimizer", "seed",
                "draws", "workers", "held_out"):
        assert key in record
    assert record["evaluations"] == 12 and record["complete"]
    assert record["held_out"]["tuned_better"] == (r.returncode == 0)
    config = load_config(out / "tuned.yaml")
    assert config.controller.gains == [record["best_gains"][n] for n in record["gain_names"]]
    assert "tuning.html" in os.listdir(out) and (out / "convergence.png").stat().st_size > 0
    runs = list_runs(db)
    assert runs[0]["mode"] == "tune" and runs[0]["controller"] == "classical_smc"
    again = tune("--out", str(out), timeout=60)
    assert again.returncode == 2 and f"--resume {out}" in again.stderr


def test_interrupted_then_resumed_equals_uninterrupted(tmp_path: Path,
                                                       small_config: Path) -> None:
    common = ["--config", str(small_config), "--budget", "30", "--draws", "2", "--seed", "5",
              "--db", str(tmp_path / "h.db")]
    whole = tune(*common, "--out", str(tmp_path / "whole"))
    assert whole.returncode in (0, 1), whole.stderr
    part_dir = tmp_path / "part"
    proc = subprocess.Popen([str(BIN / "hil"), "tune", *common, "--out", str(part_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (part_dir / "tuning.json").exists():  # the first batch's checkpoint
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert f"--resume {part_dir}" in err
    partial = json.loads((part_dir / "tuning.json").read_text())
    assert 6 <= partial["evaluations"] < 30 and not partial["complete"]
    assert (part_dir / "tuned.yaml").exists()
    resumed = tune("--resume", str(part_dir))
    assert resumed.returncode in (0, 1), resumed.stderr
    a = json.loads((tmp_path / "whole" / "tuning.json").read_text())
    b = json.loads((part_dir / "tuning.json").read_text())
    assert b["complete"] and b["evaluations"] == 30
    assert b["history"] == a["history"]
    assert b["best_gains"] == a["best_gains"] and b["best_cost"] == a["best_cost"]


def test_unreachable_scheduler_fails_within_10_s_naming_the_address(tmp_path: Path) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    r = tune("--scheduler", address, "--budget", "6", "--out", str(tmp_path / "o"), timeout=60)
    assert r.returncode == 3, r.stderr
    assert address in r.stderr
    # The connection attempt, timed by the process itself, gives up within 10 s...
    gave_up_s = float(re.search(r"gave up after ([0-9.]+) s", r.stderr).group(1))
    assert gave_up_s <= 10.0, r.stderr
    # ...and the whole command adds only its start-up (imports, slower on a loaded machine).
    assert time.monotonic() - t0 < gave_up_s + 30.0


@pytest.fixture(scope="module")
def dask_cluster():
    """A real `dask scheduler` and two `dask worker` processes (each under its nanny) on
    loopback, shared by the Dask tests of this module."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [subprocess.Popen([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port",
                               str(port), "--no-dashboard"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)]
    try:
        for _ in range(2):
            procs.append(subprocess.Popen(
                [str(BIN / "dask"), "worker", address, "--nthreads", "1", "--no-dashboard",
                 "--host", "127.0.0.1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=90)
        yield address, procs
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


DASK_ARGS = ["--budget", "18", "--draws", "3", "--seed", "2"]


@pytest.fixture(scope="module")
def local_answer(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict]:
    """(exit status, tuning.json) of the uninterrupted local run the Dask runs must equal."""
    tmp = tmp_path_factory.mktemp("local")
    config = tmp / "small.yaml"
    config.write_text(yaml.safe_dump(SMALL))
    r = tune("--config", str(config), *DASK_ARGS, "--db", str(tmp / "h.db"), "--out",
             str(tmp / "local"))
    assert r.returncode in (0, 1), r.stderr
    return r.returncode, json.loads((tmp / "local" / "tuning.json").read_text())


# Workers load the compiled batch from numba's disk cache (the law kernel enters it as a
# cfunc, so the cache matches across processes; the local run above fills it on a cold
# machine), so a remote tuning costs seconds, not a compile per worker.
@pytest.mark.timeout(300)
def test_a_dask_cluster_of_two_workers_gives_the_local_answer(tmp_path: Path,
                                                              small_config: Path,
                                                              dask_cluster,
                                                              local_answer) -> None:
    address, _ = dask_cluster
    status, a = local_answer
    remote = tune("--config", str(small_config), *DASK_ARGS, "--db", str(tmp_path / "h.db"),
                  "--scheduler", address, "--out", str(tmp_path / "remote"))
    assert remote.returncode == status, remote.stderr
    b = json.loads((tmp_path / "remote" / "tuning.json").read_text())
    assert b["workers"] == 2
    assert b["history"] == a["history"]
    assert b["best_gains"] == a["best_gains"]


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


@pytest.mark.timeout(300)
def test_a_worker_killed_holding_a_batch_loses_no_evaluation(tmp_path: Path,
                                                             small_config: Path,
                                                             dask_cluster,
                                                             local_answer) -> None:
    address, _ = dask_cluster
    status, a = local_answer
    marker = tmp_path / "parked.pid"
    from distributed import Client

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with Client(address, timeout="30s") as client:
        client.register_plugin(ParkOnThirdTask(str(marker)), name=f"park-{tmp_path.name}")
        try:
            proc = subprocess.Popen(
                [str(BIN / "hil"), "tune", "--config", str(small_config), *DASK_ARGS, "--db",
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
    assert proc.returncode == status, err
    b = json.loads((tmp_path / "remote" / "tuning.json").read_text())
    assert b["evaluations"] == 18 and b["complete"]
    assert b["history"] == a["history"]  # every evaluation of every batch, in order
    assert b["best_gains"] == a["best_gains"] and b["best_cost"] == a["best_cost"]
