"""The C client library (clients/c, libhil) against the Python controller, side by side.

Lockstep over ZeroMQ, the same LQR gain on both sides (the C example `lqr_dip` carries the
Python `lqr` law's design for the default plant): `hil run --mode lockstep --controller-cmd
lqr_dip` and `hil run --mode lockstep --controller lqr`, alternating, `--reps` times each, so
machine noise hits both alike. Per run: the plant's round trip p50 and p99, closed-loop cycles
per second of wall time (plant.rec: cycles / (last - first state's time)), the controller's
compute p50 and CPU time / wall time, and the verdict; then medians and the same-run ratios
C / Python. Builds the example first (make -C clients/c into a temporary folder). Run by hand,
not a test; quote the machine's load with the figures:

    .venv/bin/python benchmarks/bench_c_client.py [--reps 3] [--duration 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VARIANTS = ("C", "Python")


def build_example(folder: Path) -> Path:
    """clients/c's example controller, built into `folder`; its path."""
    subprocess.run(["make", "-s", "-C", str(ROOT / "clients" / "c"), f"BUILD={folder}", "all"],
                   check=True, capture_output=True, text=True)
    return folder / "lqr_dip"


def hil_run(out: Path, controller: list[str], duration_s: float) -> dict[str, Any]:
    """One lockstep run with `controller` (hil run's options choosing it): its figures."""
    from hil.recording.recorder import read_recording

    hil = Path(sys.executable).with_name("hil")
    endpoint = f"ipc://{out.parent}/{out.name}.ipc"
    done = subprocess.run([str(hil), "run", "--mode", "lockstep", "--duration", str(duration_s),
                           "--out", str(out), "--endpoint", endpoint, "--timeout", "600",
                           "--set", "record.html=false", "--set", "record.history_db=null",
                           *controller], capture_output=True, text=True, timeout=900,
                          cwd=ROOT)
    report = json.loads((out / "report.json").read_text())
    plant = json.loads((out / "plant.json").read_text())
    ctrl = json.loads((out / "controller.json").read_text())
    rec = read_recording(out / "plant.rec")
    loop_s = (int(rec["t_ns"][-1]) - int(rec["t_ns"][0])) / 1e9 if rec.rows > 1 else 0.0
    if done.returncode != 0:
        print(f"  {out.name}: hil run exited {done.returncode}: {done.stderr[-400:]}")
    return {"code": done.returncode, "verdict": report["verdict"],
            "round_trip_p50_us": plant["latency_us"]["round_trip"]["p50"],
            "round_trip_p99_us": plant["latency_us"]["round_trip"]["p99"],
            "cycles": plant["cycles"], "loop_s": loop_s,
            "cycles_per_s": plant["cycles"] / loop_s if loop_s > 0 else 0.0,
            "compute_p50_us": ctrl["latency_us"]["compute"]["p50"],
            "controller_cpu": ctrl["cpu"]["ratio"], "plant_cpu": plant["cpu"]["ratio"]}


def _median(rows: list[dict[str, Any]], key: str) -> float:
    values = [float(r[key]) for r in rows if r.get(key) is not None]
    return statistics.median(values) if values else float("nan")


def _print_table(runs: dict[str, list[dict[str, Any]]], duration_s: float, reps: int) -> None:
    print(f"\nlockstep over zmq, {duration_s:g} s simulated at 1 kHz, median of {reps}")
    print(f"{'controller':>10}{'rt p50 us':>11}{'rt p99 us':>11}{'cycles/s':>10}"
          f"{'compute p50 us':>16}{'ctrl cpu':>10}{'plant cpu':>10}  verdicts")
    for name, rows in runs.items():
        print(f"{name:>10}{_median(rows, 'round_trip_p50_us'):>11.1f}"
              f"{_median(rows, 'round_trip_p99_us'):>11.1f}{_median(rows, 'cycles_per_s'):>10.0f}"
              f"{_median(rows, 'compute_p50_us'):>16.2f}{_median(rows, 'controller_cpu'):>10.2f}"
              f"{_median(rows, 'plant_cpu'):>10.2f}  {', '.join(r['verdict'] for r in rows)}")
    pairs = list(zip(runs["C"], runs["Python"], strict=True))
    for key, label in (("round_trip_p50_us", "round trip p50"), ("cycles_per_s", "cycles/s")):
        ratios = [c[key] / p[key] for c, p in pairs if p[key]]
        print(f"C / Python {label}, same-run pairs: {', '.join(f'{x:.2f}' for x in ratios)} "
              f"(median {statistics.median(ratios):.2f})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=float, default=10.0, help="simulated s per run")
    ap.add_argument("--json")
    args = ap.parse_args()
    if args.reps < 1 or not args.duration > 0:
        ap.error(f"--reps must be >= 1 and --duration > 0, got {args.reps}, {args.duration}")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="bench_c_client-") as tmp_dir:
        tmp = Path(tmp_dir)
        controllers = {"C": ["--controller-cmd", str(build_example(tmp / "build"))],
                       "Python": ["--controller", "lqr"]}
        for i in range(args.reps):
            for name in VARIANTS:
                runs[name].append(hil_run(tmp / f"{name}-{i}", controllers[name], args.duration))
                print(f"  {name} #{i}: {runs[name][-1]}", flush=True)
    _print_table(runs, args.duration, args.reps)
    if args.json:
        Path(args.json).write_text(json.dumps({"load_avg": os.getloadavg(), "runs": runs},
                                              indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
