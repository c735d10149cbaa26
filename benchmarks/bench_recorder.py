"""What recording costs the loop: round-trip p99 at 1 kHz with recording on vs off.

Two measurements:

1. `record()` alone: nanoseconds per call of `Recorder.record` with a plant-sized row (the
   writer process running as in a run), and the cost of building that row in the loop.
2. Closed loop: `hil run` in real time at 1 kHz with `record.enabled` false and true, runs
   interleaved (off, on, off, on, ...) so machine noise hits both alike. The table shows each
   run's round-trip p50/p99 and deadline miss ratio and the medians per setting; the verdict
   compares the median p99s against the 5% target.

    .venv/bin/python benchmarks/bench_recorder.py [--reps 5] [--duration 4] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hil.dynamics.inputs import Inputs  # noqa: E402
from hil.recording.recorder import Recorder, plant_columns  # noqa: E402

NAMES = ["x", "theta1", "theta2", "x_dot", "theta1_dot", "theta2_dot"]
UNITS = ["m", "rad", "rad", "m/s", "rad/s", "rad/s"]
INPUTS = Inputs.single("force", "N", 150.0)  # the DIP's one input: one column, `force`
TARGET = 0.05


def record_cost_ns(n: int = 100_000) -> dict[str, float]:
    """The loop's and the writer's share of recording one plant row, in ns (medians of 5).

    `record_call_ns`: one `record()` call. `build_and_record_ns`: building a plant row as
    PlantServer does (the state list already made for the send) and recording it. Both with
    the writer idle, as it is between its flushes. `writer_ns_per_row`: the writer's work
    (packing, CRC, write) per row in chunks of 50 rows, as at 1 kHz with 50 ms flushes; it
    runs on the writer thread but holds the GIL for most of it.
    """
    state = [0.0, 0.1, -0.05, 0.0, 0.0, 0.0]
    u = [1.5]  # the input vector, spliced in as the loops do
    call, build, writer = [], [], []
    with tempfile.TemporaryDirectory() as d:
        for k in range(5):
            rec = Recorder(Path(d) / f"bench{k}.rec", plant_columns(NAMES, UNITS, INPUTS),
                           capacity=2 * n, flush_interval_s=3600.0, fsync_interval_s=0.0,
                           max_rows_per_chunk=50)
            record = rec.record
            row = (1, 2, 0.001, *state, *u, 0, 1000, 0, 0, 350_000)
            t0 = time.perf_counter_ns()
            for _ in range(n):
                record(row)
            call.append((time.perf_counter_ns() - t0) / n)
            t0 = time.perf_counter_ns()
            for i in range(n):
                record((i, t0, i * 1e-3, *state, *u, 0, 1000, i - 1, i - 1, 350_000))
            build.append((time.perf_counter_ns() - t0) / n)
            t0 = time.perf_counter_ns()
            stats = rec.close()
            writer.append((time.perf_counter_ns() - t0) / (2 * n))
            assert stats.rows_written == 2 * n and stats.rows_dropped == 0, stats
    return {"record_call_ns": statistics.median(call),
            "build_and_record_ns": statistics.median(build),
            "writer_ns_per_row": statistics.median(writer)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closed_loop(recording: bool, duration_s: float) -> dict[str, float]:
    """One `hil run` at 1 kHz; a run that did not complete is retried (twice at most)."""
    for _attempt in range(3):
        with tempfile.TemporaryDirectory() as out:
            config = Path(out) / "bench.yaml"
            config.write_text(f"record:\n  enabled: {str(recording).lower()}\n  html: false\n"
                              "  history_db: null\n")
            cmd = [str(ROOT / ".venv/bin/hil"), "run", "--config", str(config), "--duration",
                   str(duration_s), "--rate", "1000", "--endpoint",
                   f"tcp://127.0.0.1:{_free_port()}", "--out", str(Path(out) / "run")]
            done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
            try:
                report = json.loads((Path(out) / "run" / "report.json").read_text())
            except OSError:
                report = {}
        rt = (report.get("latency_us") or {}).get("round_trip") or {}
        if rt.get("p99") is not None:
            assert ("recording" in report) == recording, "record.enabled was not honoured"
            recorders = (report.get("recording") or {}).values()
            return {"p50": rt["p50"], "p99": rt["p99"],
                    "miss_ratio": report["deadline"]["miss_ratio"],
                    "dropped": sum(r.get("rows_dropped", 0) for r in recorders)}
        print(f"  (a run did not complete, retrying: {done.stderr.strip()[-300:]})")
    raise SystemExit("three runs in a row did not complete; is the machine overloaded?")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5, help="runs per setting")
    parser.add_argument("--duration", type=float, default=4.0, help="s per run")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()

    cost = record_cost_ns()
    print(f"record(): {cost['record_call_ns']:.0f} ns per call; building a plant row and "
          f"recording it: {cost['build_and_record_ns']:.0f} ns; the writer's work: "
          f"{cost['writer_ns_per_row']:.0f} ns per row (50-row chunks)")

    runs: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    print(f"\n{'run':<6}{'recording':<11}{'rt p50 us':>11}{'rt p99 us':>11}{'misses':>9}"
          f"{'dropped':>9}")
    for i in range(args.reps):
        for setting in ("off", "on"):
            r = closed_loop(setting == "on", args.duration)
            runs[setting].append(r)
            print(f"{i + 1:<6}{setting:<11}{r['p50']:>11.1f}{r['p99']:>11.1f}"
                  f"{r['miss_ratio']:>9.2%}{r['dropped']:>9}")
    med = {s: {k: statistics.median(r[k] for r in rs) for k in ("p50", "p99", "miss_ratio")}
           for s, rs in runs.items()}
    change = med["on"]["p99"] / med["off"]["p99"] - 1
    print(f"\nmedian  off: p50 {med['off']['p50']:.1f} us  p99 {med['off']['p99']:.1f} us  "
          f"misses {med['off']['miss_ratio']:.2%}")
    print(f"median  on:  p50 {med['on']['p50']:.1f} us  p99 {med['on']['p99']:.1f} us  "
          f"misses {med['on']['miss_ratio']:.2%}")
    print(f"recording changes the median round-trip p99 by {change:+.1%} "
          f"(target < {TARGET:.0%}): {'met' if change < TARGET else 'NOT met'}")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"record_cost": cost, "runs": runs, "medians": med, "p99_change": change},
            indent=2))


if __name__ == "__main__":
    main()
