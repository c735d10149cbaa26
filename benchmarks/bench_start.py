"""What a short `hil run` costs when it forks its plant and controller (hil/cli/forkstart.py)
and when it starts their console scripts (HIL_RUN_EXEC=1).

Each repetition is a whole `hil run` of the default config in lockstep for `--duration`
simulated seconds (no HTML page, no history), its exit status checked. Figures: the wall
time from start to exit, and the CPU time of `hil run` and every process under it (user +
system, from wait4). The two variants take turns, so machine noise hits them alike; medians
of the repetitions, and the ratio forked / exec.

    .venv/bin/python benchmarks/bench_start.py [--reps 5] [--duration 0.2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HIL = Path(sys.executable).with_name("hil")
VARIANTS = {"forked": "", "exec": "1"}


def one(exec_env: str, duration_s: float, out: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the run and its processes) of one `hil run`."""
    argv = [str(HIL), "run", "--mode", "lockstep", "--duration", str(duration_s),
            "--set", "record.html=false", "--set", "record.history_db=null",
            "--endpoint", f"ipc://{out}/run.ipc", "--out", str(out / "run"), "--overwrite"]
    env = {**os.environ, "HIL_RUN_EXEC": exec_env}
    began = time.monotonic()
    pid = os.posix_spawn(str(HIL), argv, env, file_actions=[
        (os.POSIX_SPAWN_OPEN, fd, os.devnull, os.O_WRONLY, 0) for fd in (1, 2)])
    _, status, usage = os.wait4(pid, 0)
    wall = time.monotonic() - began
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 1):  # 1: a FAIL verdict (a short run may not settle); else no run
        raise SystemExit(f"hil run exited {code} (HIL_RUN_EXEC={exec_env!r})")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--duration", type=float, default=0.2)
    args = parser.parse_args()
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="bench-start-") as tmp:
        for exec_env in VARIANTS.values():  # warm numba's cache and the page cache
            one(exec_env, args.duration, Path(tmp))
        for _ in range(args.reps):
            for name, exec_env in VARIANTS.items():
                figures[name].append(one(exec_env, args.duration, Path(tmp)))
    load = os.getloadavg()[0]
    print(f"hil run --mode lockstep --duration {args.duration:g}: medians of {args.reps} "
          f"(load {load:.1f}, {os.cpu_count()} CPUs)")
    medians = {}
    for name, rows in figures.items():
        wall = statistics.median(r[0] for r in rows)
        cpu = statistics.median(r[1] for r in rows)
        medians[name] = (wall, cpu)
        print(f"  {name:7s} wall {wall:6.2f} s   CPU {cpu:6.2f} s")
    (fw, fc), (ew, ec) = medians["forked"], medians["exec"]
    print(f"  forked / exec: wall {fw / ew:.2f}x, CPU {fc / ec:.2f}x")


if __name__ == "__main__":
    main()
