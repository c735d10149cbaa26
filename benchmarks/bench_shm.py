"""The same-host fast path (run.transport shm) against ZeroMQ, measured side by side.

Three parts, each interleaving what it compares so machine noise hits all alike; medians over
the repetitions (run by hand, not a test; quote the machine's load with the figures):

1. `handoff`: the raw hand-off between two processes through hil/link/shm.py (a state slot
   one way, a control slot back), nothing else, for each way of waiting:
   - `spin`: pure busy-polling on the slot's counter;
   - `spin+futex`: busy-poll SPIN_US, then sleep on the doorbell (what the runtime does);
   - `futex`: sleep on the doorbell at once;
   - `spin+yield`: busy-poll with sched_yield() between polls;
   - `spin pinned`: pure spin, each process pinned to its own CPU (os.sched_setaffinity).
   Round trip p50/p99 in us, and each side's CPU time / wall time.
2. `lockstep`: `hil run --mode lockstep --duration 20` over zmq and over shm: the plant's
   round_trip p50, closed-loop cycles per second of wall time (from the plant's recording:
   cycles / (last - first state's monotonic time)), each process's CPU ratio, and each
   side's own work per cycle (turnaround medians from the recordings).
3. `realtime`: `hil run --transport shm --rate R --duration 10` for each R: deadline miss
   ratio, dropped records, verdict (<= 1 % misses and nothing dropped).

    .venv/bin/python benchmarks/bench_shm.py [--parts handoff,lockstep,realtime]
        [--reps 3] [--rates 2000,5000,10000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

N_TRIPS = 20_000
SPIN_US = 50

STRATEGIES = ("spin", "spin+futex", "futex", "spin+yield", "spin pinned")

# The echo side: answers each state with a control carrying its seq, waiting as told.
_ECHO = """
import os, sys, time
from hil.link import shm
seg = shm.Segment.open(sys.argv[1])
strategy, n, cpu = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
if cpu >= 0:
    os.sched_setaffinity(0, {cpu})
states, controls = shm.StateReader(seg), shm.ControlWriter(seg, seg.session)
spin_first, spin_last, yield_ = {"spin": (10**12, 0, False), "spin+futex": (SPIN_NS, 0, False),
    "futex": (0, 0, False), "spin+yield": (10**12, 0, True),
    "spin pinned": (10**12, 0, False)}[strategy]
print("ready", flush=True)
clock = time.monotonic_ns
c0, w0 = time.process_time(), time.monotonic()
for k in range(n):
    deadline = clock() + 5_000_000_000
    if not states.wait(deadline, states.has_new, clock, spin_first, spin_last, yield_):
        sys.exit("echo: no state in 5 s")
    seq, t_ns, flags, values = states.take()
    controls.write(k + 1, seq, [0.0], 0, 0, 0)
print((time.process_time() - c0) / (time.monotonic() - w0), flush=True)
seg.close()
""".replace("SPIN_NS", str(SPIN_US * 1000))


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def handoff(strategy: str, n: int = N_TRIPS) -> dict[str, float]:
    from hil.link import shm

    seg = shm.Segment.create(f"bench-shm-{os.getpid()}-{time.monotonic_ns()}", 6)
    seg.new_session()  # as an attach does: a writer under any other session is refused
    pinned = strategy == "spin pinned"
    echo = subprocess.Popen([sys.executable, "-c", _ECHO, seg.name, strategy, str(n),
                             "1" if pinned else "-1"], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    mask = os.sched_getaffinity(0)
    try:
        if pinned:
            os.sched_setaffinity(0, {0})
        assert echo.stdout is not None and echo.stdout.readline().strip() == "ready"
        states, controls = shm.StateWriter(seg), shm.ControlReader(seg)
        spin_first = {"spin": 10**12, "spin+futex": SPIN_US * 1000, "futex": 0,
                      "spin+yield": 10**12, "spin pinned": 10**12}[strategy]
        yield_ = strategy == "spin+yield"
        clock = time.monotonic_ns
        trips: list[float] = []
        state = [0.0] * 6
        c0, w0 = time.process_time(), time.monotonic()
        for k in range(n):
            t = clock()
            states.write(k, t, state, 0)
            if not controls.wait(t + 5_000_000_000, controls.has_new, clock, spin_first, 0,
                                 yield_):
                raise RuntimeError(f"{strategy}: no answer in 5 s")
            controls.take()
            trips.append((clock() - t) / 1e3)
        ratio = (time.process_time() - c0) / (time.monotonic() - w0)
        echo_ratio = float(echo.stdout.readline())
        echo.wait(timeout=30)
    finally:
        os.sched_setaffinity(0, mask)
        echo.kill()
        seg.close()
    return {"p50_us": _pct(trips, 0.5), "p99_us": _pct(trips, 0.99),
            "cpu_ratio_a": ratio, "cpu_ratio_b": echo_ratio}


def hil_run(out: Path, *args: str) -> dict[str, Any]:
    hil = Path(sys.executable).with_name("hil")
    endpoint = f"ipc://{out.parent}/{out.name}.ipc"
    done = subprocess.run([str(hil), "run", "--out", str(out), "--endpoint", endpoint,
                           "--timeout", "600", *args], capture_output=True, text=True,
                          timeout=900)
    report = json.loads((out / "report.json").read_text())
    plant = json.loads((out / "plant.json").read_text())
    controller = json.loads((out / "controller.json").read_text())
    from hil.recording.recorder import read_recording

    rec = read_recording(out / "plant.rec")
    loop_s = (int(rec["t_ns"][-1]) - int(rec["t_ns"][0])) / 1e9
    gates = {g["name"]: g for g in report["gates"]}
    turn: dict[str, float | None] = {"plant_turn_p50_us": None, "controller_turn_p50_us": None}
    if "lockstep" in args:
        # Each side's own work per cycle, medians (robust to the machine's stalls): the plant
        # from a control's arrival (its state's publish time + round trip) to the next
        # state's stamp; the controller from a state's arrival to its control's send.
        import numpy as np

        t = rec["t_ns"].astype(np.int64)
        rt = rec["round_trip_ns"].astype(np.int64)
        crec = read_recording(out / "controller.rec")
        turn = {"plant_turn_p50_us": float(np.median(t[2:] - t[1:-1] - rt[2:])) / 1e3,
                "controller_turn_p50_us": float(np.median(crec["send_ns"] - crec["rx_ns"])) / 1e3}
    return {**turn,"code": done.returncode, "verdict": report["verdict"],
            "round_trip_p50_us": plant["latency_us"]["round_trip"]["p50"],
            "round_trip_p99_us": plant["latency_us"]["round_trip"]["p99"],
            "cycles": plant["cycles"], "loop_s": loop_s,
            "cycles_per_s": plant["cycles"] / loop_s if loop_s > 0 else 0.0,
            "miss_ratio": plant["deadline"]["miss_ratio"],
            "dropped_records": gates.get("dropped_records", {}).get("value"),
            "plant_cpu": plant["cpu"]["ratio"], "controller_cpu": controller["cpu"]["ratio"],
            "futex_sleeps": (plant["transport"].get("sleeps"),
                             controller["transport"].get("sleeps")),
            "no_new_state": controller["no_new_state"],
            "watchdog_trips": plant["watchdog"]["trips"],
            "spin_us": plant["transport"].get("spin_us"),
            "controller_lateness_p99_us": controller["latency_us"]["controller_lateness"]["p99"],
            "plant_lateness_p99_us": plant["latency_us"]["plant_lateness"]["p99"]}


def _median(rows: list[dict[str, Any]], key: str) -> float:
    """Median over the runs that have the figure (a failed run may not): nan if none."""
    values = [float(r[key]) for r in rows if r.get(key) is not None]
    return statistics.median(values) if values else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--parts", default="handoff,lockstep,realtime")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--rates", default="2000,5000,10000")
    ap.add_argument("--lockstep-s", type=float, default=20.0)
    ap.add_argument("--realtime-s", type=float, default=10.0)
    ap.add_argument("--json")
    args = ap.parse_args()
    parts = args.parts.split(",")
    results: dict[str, Any] = {"load_avg": os.getloadavg(), "cpus": os.cpu_count()}
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if "handoff" in parts:
        rows: dict[str, list[dict[str, float]]] = {s: [] for s in STRATEGIES}
        for _ in range(args.reps):
            for s in STRATEGIES:
                rows[s].append(handoff(s))
        print(f"\nhand-off through shared memory, {N_TRIPS} round trips, median of {args.reps}")
        print(f"{'waiting':<14}{'p50 us':>9}{'p99 us':>10}{'cpu A':>8}{'cpu B':>8}")
        for s in STRATEGIES:
            r = rows[s]
            print(f"{s:<14}{_median(r, 'p50_us'):>9.2f}{_median(r, 'p99_us'):>10.1f}"
                  f"{_median(r, 'cpu_ratio_a'):>8.2f}{_median(r, 'cpu_ratio_b'):>8.2f}")
        results["handoff"] = rows
    tmp = Path(tempfile.mkdtemp(prefix="bench-shm-"))
    if "lockstep" in parts:
        runs: dict[str, list[dict[str, Any]]] = {"zmq": [], "shm": []}
        for i in range(args.reps):
            for t in ("zmq", "shm"):
                runs[t].append(hil_run(tmp / f"lockstep-{t}-{i}", "--mode", "lockstep",
                                       "--duration", str(args.lockstep_s), "--transport", t))
                print(f"  lockstep {t} #{i}: {runs[t][-1]}", flush=True)
        print(f"\nlockstep, {args.lockstep_s:g} s simulated at 1 kHz, median of {args.reps}")
        print(f"{'transport':<10}{'rt p50 us':>10}{'rt p99 us':>10}{'cycles/s':>10}"
              f"{'plant cpu':>10}{'ctrl cpu':>9}{'plant turn us':>14}{'ctrl turn us':>13}")
        for t in ("zmq", "shm"):
            r = runs[t]
            print(f"{t:<10}{_median(r, 'round_trip_p50_us'):>10.1f}"
                  f"{_median(r, 'round_trip_p99_us'):>10.1f}{_median(r, 'cycles_per_s'):>10.0f}"
                  f"{_median(r, 'plant_cpu'):>10.2f}{_median(r, 'controller_cpu'):>9.2f}"
                  f"{_median(r, 'plant_turn_p50_us'):>14.1f}"
                  f"{_median(r, 'controller_turn_p50_us'):>13.1f}")
        ratios = [s["cycles_per_s"] / z["cycles_per_s"] for z, s in zip(runs["zmq"], runs["shm"],
                                                                         strict=True)
                  if z["cycles_per_s"] > 0]
        print(f"shm / zmq cycles per second, same-run pairs: "
              f"{', '.join(f'{x:.1f}' for x in ratios)} (median {statistics.median(ratios):.1f})")
        results["lockstep"] = runs
    if "realtime" in parts:
        rt: dict[str, list[dict[str, Any]]] = {}
        for i in range(args.reps):
            for rate in args.rates.split(","):
                rt.setdefault(rate, []).append(hil_run(
                    tmp / f"rt-{rate}-{i}", "--transport", "shm", "--rate", rate,
                    "--duration", str(args.realtime_s)))
                print(f"  realtime {rate} Hz #{i}: {rt[rate][-1]}", flush=True)
        print(f"\nrealtime over shm, {args.realtime_s:g} s, median of {args.reps}")
        print(f"{'rate Hz':>8}{'misses %':>10}{'dropped':>9}{'rt p50 us':>10}{'plant cpu':>10}"
              f"{'ctrl cpu':>9}{'spin us':>8}{'wd trips':>9}  passes (<= 1 % misses, none dropped)")
        for rate, r in rt.items():
            ok = sum(1 for x in r if x["miss_ratio"] <= 0.01 and x["dropped_records"] == 0)
            print(f"{rate:>8}{100 * _median(r, 'miss_ratio'):>10.2f}"
                  f"{_median(r, 'dropped_records'):>9.0f}{_median(r, 'round_trip_p50_us'):>10.1f}"
                  f"{_median(r, 'plant_cpu'):>10.2f}{_median(r, 'controller_cpu'):>9.2f}"
                  f"{_median(r, 'spin_us'):>8.0f}{sum(x['watchdog_trips'] for x in r):>9}"
                  f"  {ok} of {len(r)}")
        results["realtime"] = rt
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
