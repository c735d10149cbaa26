"""Closed-loop round trip (lockstep) against the transport floor, measured side by side.

The floor is a raw pyzmq + msgpack ping-pong between two processes over loopback TCP, with
the same socket types (ROUTER/DEALER) and message sizes as a plant state and a control, and
nothing else: no validation, no control law, no bookkeeping. The closed loop is `hil run
--mode lockstep` with the default plant and controller; its `round_trip` p50 comes from the
plant's HDR histogram. The loop is measured twice: as shipped, sleeping at once for each
answer, and with `run.lockstep_spin_us: 300` (300 us of busy-polling before sleeping). Runs
alternate (floor, loop, spinning loop, floor, ...) so machine noise hits all alike; the
table shows medians over the repetitions.

    .venv/bin/python benchmarks/bench_roundtrip.py [--reps 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgpack
import zmq

ROOT = Path(__file__).resolve().parents[1]
N_PINGS = 3000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pong(endpoint: str, n: int) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.connect(endpoint)
    sock.send(msgpack.packb(["hello"]))
    for _ in range(n):
        m = msgpack.unpackb(sock.recv())
        sock.send(msgpack.packb(("control", m[1], m[1], [1.5], time.monotonic_ns(),
                                 time.monotonic_ns(), 1000)))
    sock.close(0)
    ctx.term()


def floor_round_trip_us(n: int = N_PINGS) -> float:
    """Median of a raw ROUTER/DEALER msgpack ping-pong, in microseconds."""
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.bind(endpoint)
    child = mp.get_context("spawn").Process(target=_pong, args=(endpoint, n))
    child.start()
    peer, _ = sock.recv_multipart()
    state = [0.0, 0.1, -0.05, 0.0, 0.0, 0.0]
    samples = []
    for seq in range(n):
        t0 = time.monotonic_ns()
        sock.send_multipart((peer, msgpack.packb(("state", seq, t0, state, 0))))
        msgpack.unpackb(sock.recv_multipart()[1])
        samples.append(time.monotonic_ns() - t0)
    child.join()
    sock.close(0)
    ctx.term()
    return statistics.median(samples[100:]) / 1e3


def loop_round_trip_us(duration_s: float = 3.0, spin_us: float = 0.0) -> dict:
    """p50/p99 round trip of a lockstep closed loop (`hil run`), in microseconds."""
    with tempfile.TemporaryDirectory() as out:
        config_path = Path(out) / "bench.yaml"
        config_path.write_text(f"run:\n  lockstep_spin_us: {spin_us}\n")
        cmd = [str(ROOT / ".venv/bin/hil"), "run", "--config", str(config_path),
               "--mode", "lockstep",
               "--duration", str(duration_s), "--endpoint", f"tcp://127.0.0.1:{_free_port()}",
               "--out", str(Path(out) / "run")]
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
        report = json.loads((Path(out) / "run" / "report.json").read_text())
    return report["latency_us"]["round_trip"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json", help="write the figures here")
    args = ap.parse_args()
    floors, loops, loops99, spins = [], [], [], []
    for _ in range(args.reps):
        floors.append(floor_round_trip_us())
        rt = loop_round_trip_us(spin_us=0)
        loops.append(rt["p50"])
        loops99.append(rt["p99"])
        spins.append(loop_round_trip_us(spin_us=300)["p50"])
    f, lp, sp = statistics.median(floors), statistics.median(loops), statistics.median(spins)
    rows = {
        "floor_p50_us": f,
        "loop_p50_us": lp,
        "loop_p99_us": statistics.median(loops99),
        "ratio_p50": lp / f,
        "loop_spin300_p50_us": sp,
        "ratio_spin300_p50": sp / f,
        "reps": args.reps,
        "floors": floors,
        "loops": loops,
        "spins": spins,
    }
    w = 44
    print(f"{'figure':<{w}}{'median':>10}")
    print(f"{'raw zmq+msgpack ping-pong p50 (us)':<{w}}{f:>10.1f}")
    print(f"{'lockstep closed loop p50 (us)':<{w}}{lp:>10.1f}")
    print(f"{'lockstep closed loop p99 (us)':<{w}}{rows['loop_p99_us']:>10.1f}")
    print(f"{'ratio loop / floor (target <= 1.2)':<{w}}{rows['ratio_p50']:>10.2f}")
    print(f"{'lockstep_spin_us 300: closed loop p50 (us)':<{w}}{sp:>10.1f}")
    print(f"{'lockstep_spin_us 300: ratio to the floor':<{w}}{rows['ratio_spin300_p50']:>10.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
