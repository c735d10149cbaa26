"""Each loop's own work per tick, on a baseline revision and on this tree, side by side.

Real `hil run --mode lockstep` runs (real hil-plant and hil-controller processes), the default
plant and controller (configs/default.yaml of each tree), recording on (no HTML, no history),
no spinning unless `--spin-us` says (it sets `run.shm_spin_us` and `run.lockstep_spin_us`:
each loop then busy-polls that long for its peer's answer before it sleeps), over each
transport. Per run:

- plant work per tick, p50/p99 (us), from plant.rec. A row is one published state: `t_ns` is
  stamped just before the state is encoded and sent, `round_trip_ns` is the newest applied
  control's (its state's `t_ns` -> that control's arrival stamp). In lockstep the control
  answering state k is applied before state k+1 is published, so row k+1 carries its round
  trip and work[k] = t_ns[k+1] - (t_ns[k] + round_trip_ns[k+1]): from the control's arrival to
  the next state's stamp (control decode over zmq, checks, apply, advance, gates, scoring).
  Pairs whose row k+1 does not answer state k with a new control are left out, and so is the
  final state. Not in it: the state's encode and send, and what follows the send (recording,
  histograms), which overlap the controller's turn; the CPU figure below has them.
- controller work per tick, p50/p99 (us), from controller.rec: `send_ns - rx_ns`, the state's
  arrival stamp to the stamp taken just before the control is encoded and sent (state decode
  over zmq, bookkeeping, the law).
- CPU per cycle of each process (us): its JSON's cpu.cpu_s over its cycles (plant `cycles`,
  controller `controls_sent`). The process's every thread (zmq's I/O thread, the recorder's
  writer) from the loop's start to its end, attach and handshake included: the whole tick's
  cost with its wake-ups.
- for context: the lockstep round trip p50/p99 (plant.json) and cycles per second of wall
  time (plant.rec: rows over the span of `t_ns`).

The first WARMUP_ROWS rows of each recording are left out (first calls, caches). The baseline
runs from a git worktree of REV (/tmp/bench-baseline-<commit>, made once and reused) with
PYTHONPATH and cwd there and this Python; this tree runs the same way from here (uncommitted
changes included). Before measuring, each tree gets a short warm-up run per transport (numba
caches) and a check that its modules are imported from that tree. Runs alternate baseline and
current, the order flipped each repetition, so machine noise hits both alike; the table shows
medians of the repetitions and the ratio current / baseline.

    .venv/bin/python benchmarks/bench_tick.py [--baseline REV] [--reps 3] [--duration 15]
        [--transports zmq,shm] [--spin-us 0] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hil.recording.recorder import Recording, read_recording  # noqa: E402

DEFAULT_BASELINE = "5e8e1d0"
WARMUP_ROWS = 100
WARMUP_RUN_S = 0.5
RUN_TIMEOUT_S = 900  # hil run stops its processes after its own --timeout 600
TRANSPORTS = ("zmq", "shm")
CONFIG = "configs/default.yaml"
SETTINGS = ("record.enabled=true", "record.html=false", "record.history_db=null")
# Modules whose origin tells which tree a run's processes import.
CHECKED_MODULES = ("hil.cli", "plant_server.main", "controller_client.main")
# (label, figure key in a run's figures, whether the figure has a p99)
ROWS = (("plant work per tick (us)", "plant_work", True),
        ("controller work per tick (us)", "controller_work", True),
        ("plant CPU per cycle (us)", "plant_cpu_per_cycle_us", False),
        ("controller CPU per cycle (us)", "controller_cpu_per_cycle_us", False),
        ("round trip (us)", "round_trip", True),
        ("cycles per second", "cycles_per_s", False))


class BenchError(Exception):
    """Bad usage or a tree that cannot be run; the message names the problem and the fix."""


@dataclass(frozen=True)
class Tree:
    """Code to run: a name for the table, its folder (PYTHONPATH and cwd), what it is."""

    name: str
    path: Path
    describe: str


def _git(*args: str) -> str:
    done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchError(f"git {' '.join(args)}: {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout.strip()


def baseline_tree(rev: str) -> Tree:
    """A worktree of `rev` in /tmp, made on first use and reused after."""
    try:
        commit = _git("rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except BenchError:
        raise BenchError(f"--baseline {rev!r} is not a commit of {ROOT}: give a commit, "
                         "tag or branch (default 5e8e1d0)") from None
    path = Path(f"/tmp/bench-baseline-{commit[:7]}")
    if not path.exists():
        _git("worktree", "add", "--detach", str(path), commit)
    head = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    if head != commit:
        raise BenchError(f"{path} holds {head[:7] or 'no checkout'}, not {commit[:7]}: remove "
                         f"it (git worktree remove --force {path}) and run again")
    if not (path / CONFIG).is_file():
        raise BenchError(f"{commit[:7]} has no {CONFIG}: choose a later --baseline")
    return Tree("baseline", path, f"{commit[:7]} (worktree {path})")


def current_tree() -> Tree:
    changed = _git("status", "--porcelain", "--untracked-files=no").splitlines()
    head = _git("rev-parse", "--short", "HEAD")
    return Tree("current", ROOT, f"{head} + {len(changed)} modified files ({ROOT})")


def _env(tree: Tree) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree.path)}


def check_imports(tree: Tree) -> None:
    """The processes `hil run` starts inherit PYTHONPATH; from outside any tree (as the
    console scripts run) it must resolve our packages to `tree`."""
    code = ("import importlib, sys\n"
            "for m in sys.argv[1:]: print(importlib.import_module(m).__file__)")
    done = subprocess.run([sys.executable, "-c", code, *CHECKED_MODULES], cwd="/",
                          env=_env(tree), capture_output=True, text=True)
    files = done.stdout.split()
    wrong = [f for f in files if not Path(f).is_relative_to(tree.path)]
    if done.returncode != 0 or wrong or len(files) != len(CHECKED_MODULES):
        raise BenchError(f"{tree.name}: with PYTHONPATH={tree.path} the modules come from "
                         f"{wrong or done.stderr.strip()[-200:]}: check the venv's install")


def hil_run(tree: Tree, out: Path, transport: str, duration_s: float,
            endpoint: str | None = None, spin_us: int = 0) -> subprocess.Popen[str]:
    """Start one lockstep `hil run` of `tree` into `out` (on `endpoint`, else one of its own)."""
    cmd = [sys.executable, "-m", "hil.cli", "run", "--config",
           str(tree.path / CONFIG), "--mode", "lockstep",
           "--duration", str(duration_s), "--transport", transport,
           "--endpoint", endpoint or f"ipc://{out}.ipc", "--out", str(out), "--timeout", "600"]
    for setting in (*SETTINGS, f"run.shm_spin_us={spin_us}", f"run.lockstep_spin_us={spin_us}"):
        cmd += ["--set", setting]
    return subprocess.Popen(cmd, cwd=tree.path, env=_env(tree), text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def plant_work_us(rec: Recording) -> np.ndarray:
    """Per tick: the control's arrival at the plant -> the next state's stamp, in us."""
    seq, t, control, answered, rt = (rec[k].astype(np.int64) for k in (
        "seq", "t_ns", "control_seq", "answered_seq", "round_trip_ns"))
    k = np.arange(WARMUP_ROWS, len(seq) - 2)  # pairs (k, k + 1), the final state left out
    nxt = k + 1
    valid = ((answered[nxt] == seq[k]) & (control[nxt] > control[k]) & (rt[nxt] >= 0)
             & (seq[nxt] == seq[k] + 1))
    work: np.ndarray = (t[nxt] - t[k] - rt[nxt])[valid] / 1e3
    return work


def controller_work_us(rec: Recording) -> np.ndarray:
    """Per control: the state's arrival -> the control's send stamp, in us."""
    rx, send = rec["rx_ns"].astype(np.int64), rec["send_ns"].astype(np.int64)
    return (send - rx)[WARMUP_ROWS:] / 1e3


def _p50_p99(values: np.ndarray, name: str) -> dict[str, float]:
    if values.size == 0:
        return {}
    p50, p99 = np.percentile(values, [50, 99])
    return {f"{name}_p50": float(p50), f"{name}_p99": float(p99)}


def figures(out: Path) -> dict[str, Any]:
    """What one finished run measured (see the module's docstring)."""
    plant = json.loads((out / "plant.json").read_text())
    controller = json.loads((out / "controller.json").read_text())
    rec, crec = read_recording(out / "plant.rec"), read_recording(out / "controller.rec")
    plant_work, controller_work = plant_work_us(rec), controller_work_us(crec)
    span_s = (int(rec["t_ns"][-1]) - int(rec["t_ns"][0])) / 1e9
    rt = plant["latency_us"]["round_trip"]
    return {**_p50_p99(plant_work, "plant_work"), "plant_ticks": int(plant_work.size),
            **_p50_p99(controller_work, "controller_work"),
            "controller_ticks": int(controller_work.size),
            "plant_cpu_per_cycle_us": 1e6 * plant["cpu"]["cpu_s"] / max(plant["cycles"], 1),
            "controller_cpu_per_cycle_us": 1e6 * controller["cpu"]["cpu_s"]
            / max(controller["controls_sent"], 1),
            "round_trip_p50": rt["p50"], "round_trip_p99": rt["p99"],
            "cycles_per_s": rec.rows / span_s if span_s > 0 else 0.0,
            "plant_json_keys": sorted(plant)}


def measure(tree: Tree, out: Path, transport: str, duration_s: float,
            endpoint: str | None = None, spin_us: int = 0) -> dict[str, Any]:
    """One run's figures, or its exit code and last error line when it failed."""
    proc = hil_run(tree, out, transport, duration_s, endpoint, spin_us)
    try:
        _, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    row: dict[str, Any] = {"tree": tree.name, "transport": transport, "code": proc.returncode,
                           "load_avg_1m": os.getloadavg()[0]}
    try:
        row.update(figures(out))
    except (OSError, KeyError, ValueError) as exc:
        lines = err.strip().splitlines()
        row["error"] = f"{type(exc).__name__}: {exc}; stderr: {lines[-1] if lines else ''}"
    return row


def _median(rows: list[dict[str, Any]], key: str) -> float:
    values = [float(r[key]) for r in rows if key in r]
    return statistics.median(values) if values else float("nan")


def _cells(rows: list[dict[str, Any]], key: str, has_p99: bool) -> tuple[float, float]:
    if has_p99:
        return _median(rows, f"{key}_p50"), _median(rows, f"{key}_p99")
    return _median(rows, key), float("nan")


def print_table(runs: dict[str, dict[str, list[dict[str, Any]]]], reps: int) -> None:
    w = 32
    for transport, by_tree in runs.items():
        print(f"\nlockstep over {transport}, median of {reps}")
        print(f"{'figure':<{w}}{'base p50':>10}{'base p99':>10}{'cur p50':>10}{'cur p99':>10}"
              f"{'cur/base p50':>14}{'p99':>7}")
        for label, key, has_p99 in ROWS:
            b50, b99 = _cells(by_tree["baseline"], key, has_p99)
            c50, c99 = _cells(by_tree["current"], key, has_p99)
            cells = "".join(f"{'-' if np.isnan(x) else format(x, '.1f'):>10}"
                            for x in (b50, b99, c50, c99))
            r99 = "-" if np.isnan(b99) else f"{c99 / b99:.2f}"
            print(f"{label:<{w}}{cells}{c50 / b50:>14.2f}{r99:>7}")


def _key_difference(baseline: dict[str, Any], current: dict[str, Any]) -> str:
    b, c = set(baseline.get("plant_json_keys", ())), set(current.get("plant_json_keys", ()))
    return (f"plant.json keys only in current: {sorted(c - b) or 'none'}, "
            f"only in baseline: {sorted(b - c) or 'none'}")


def warm_up(trees: list[Tree], transports: list[str], tmp: Path) -> None:
    """A short run of each tree per transport (numba caches), checked to complete."""
    first: dict[str, dict[str, Any]] = {}
    for tree in trees:
        check_imports(tree)
        for transport in transports:
            row = measure(tree, tmp / f"warm-{tree.name}-{transport}", transport, WARMUP_RUN_S)
            if "error" in row:
                raise BenchError(f"{tree.name} ({tree.describe}) over {transport}: the warm-up "
                                 f"run failed ({row['error']}); fix that tree first")
            first.setdefault(tree.name, row)
    if len(first) == 2:
        print(_key_difference(first["baseline"], first["current"]))


def run_all(trees: list[Tree], transports: list[str], reps: int, duration_s: float,
            tmp: Path, spin_us: int = 0) -> dict[str, dict[str, list[dict[str, Any]]]]:
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        t: {tree.name: [] for tree in trees} for t in transports}
    for i in range(reps):
        for transport in transports:
            # Both trees' run i on one endpoint: over shm the CPUs the loops are pinned to
            # follow the segment's name (loop_cpus), and one pair of CPUs was 15 % faster
            # than the other here (the same commit against itself, 3 runs each).
            endpoint = f"ipc://{tmp}/ep-{transport}-{i}.ipc"
            for tree in trees if i % 2 == 0 else trees[::-1]:
                row = measure(tree, tmp / f"{tree.name}-{transport}-{i}", transport,
                              duration_s, endpoint, spin_us)
                runs[transport][tree.name].append(row)
                shown = {k: round(v, 1) if isinstance(v, float) else v
                         for k, v in row.items() if k != "plant_json_keys"}
                print(f"  #{i} {tree.name} {transport}: {shown}", flush=True)
    return runs


def _arguments() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--baseline", default=DEFAULT_BASELINE, help="revision to compare with")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=float, default=15.0, help="simulated s per run")
    ap.add_argument("--transports", default=",".join(TRANSPORTS))
    ap.add_argument("--spin-us", type=int, default=0,
                    help="run.shm_spin_us and run.lockstep_spin_us of every run (0: none)")
    ap.add_argument("--json", help="write the raw figures here")
    args = ap.parse_args()
    if args.reps < 1:
        raise BenchError(f"--reps must be >= 1, got {args.reps}")
    if not 0 <= args.spin_us <= 10_000:
        raise BenchError(f"--spin-us must be 0-10000 us (run.shm_spin_us's range), "
                         f"got {args.spin_us}")
    if not 1.0 <= args.duration <= 600.0:
        raise BenchError(f"--duration must be 1-600 simulated s (enough rows for a p99), "
                         f"got {args.duration:g}")
    unknown = set(args.transports.split(",")) - set(TRANSPORTS)
    if unknown:
        raise BenchError(f"--transports: {', '.join(sorted(unknown))} unknown; "
                         f"use {', '.join(TRANSPORTS)}")
    if not Path(sys.executable).with_name("hil-plant").exists():
        raise BenchError(f"{sys.executable} has no hil-plant beside it: run this with the "
                         "project's .venv/bin/python")
    return args


def main() -> int:
    try:
        args = _arguments()
        trees = [baseline_tree(args.baseline), current_tree()]
        transports = args.transports.split(",")
        load_before = os.getloadavg()
        print(f"load average before: {' '.join(f'{x:.2f}' for x in load_before)} "
              f"on {os.cpu_count()} CPUs")
        for tree in trees:
            print(f"{tree.name}: {tree.describe}")
        tmp = Path(tempfile.mkdtemp(prefix="bench-tick-"))
        warm_up(trees, transports, tmp)
    except BenchError as exc:
        print(f"bench_tick: {exc}", file=sys.stderr)
        return 2
    print(f"spin: {args.spin_us} us (run.shm_spin_us, run.lockstep_spin_us)")
    runs = run_all(trees, transports, args.reps, args.duration, tmp, args.spin_us)
    load_after = os.getloadavg()
    print_table(runs, args.reps)
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in load_after)}")
    failed = [r for by_tree in runs.values() for rows in by_tree.values() for r in rows
              if "error" in r]
    for r in failed:
        print(f"failed: {r['tree']} {r['transport']}: exit {r['code']}, {r['error']}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "trees": {t.name: t.describe for t in trees}, "duration_s": args.duration,
            "reps": args.reps, "settings": SETTINGS, "load_avg_before": load_before,
            "load_avg_after": load_after, "cpus": os.cpu_count(), "runs": runs}, indent=1))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
