"""What the live view costs the loop: round trip p50/p99 and deadline misses of real `hil run`
runs without --watch, with --watch and no page, and with --watch and a page reading every
update (a WebSocket client standing in for the browser), interleaved in one benchmark run.

    .venv/bin/python benchmarks/bench_watch.py [--pairs 3] [--duration 5]

Prints each run and the median of each figure per variant. Run by hand, not in the tests.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from websockets.sync.client import connect


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def page(port: int, stop: threading.Event, counts: list[int]) -> None:
    """Read every update like a browser would, until the run ends."""
    give_up = time.monotonic() + 20
    while not stop.is_set() and time.monotonic() < give_up:
        try:
            with connect(f"ws://127.0.0.1:{port}/ws", open_timeout=1) as ws:
                while not stop.is_set():
                    ws.recv(timeout=5)
                    counts[0] += 1
        except Exception:  # not up yet, or the run ended: try again until stopped
            time.sleep(0.05)


def one_run(variant: str, duration: float, out: Path) -> dict[str, float]:
    port = free_port()
    cmd = [sys.executable, "-m", "hil.cli", "run", "--duration", str(duration), "--out",
           str(out), "--endpoint", f"tcp://127.0.0.1:{free_port()}"]
    if variant != "off":
        cmd += ["--watch", "--watch-port", str(port)]
    stop, counts = threading.Event(), [0]
    reader = threading.Thread(target=page, args=(port, stop, counts), daemon=True)
    if variant == "page":
        reader.start()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    stop.set()
    if variant == "page":
        reader.join(10)
    report = json.loads((out / "report.json").read_text())
    rt = report["latency_us"]["round_trip"]
    d = report["deadline"]
    return {"p50": rt["p50"], "p99": rt["p99"], "misses": d["misses"],
            "updates_per_s": counts[0] / duration}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {"off": [], "watch": [], "page": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.pairs):
            for variant in results:
                r = one_run(variant, args.duration, Path(tmp) / f"{variant}{i}")
                results[variant].append(r)
                print(f"{variant:>5} run {i}: round trip p50 {r['p50']:.0f} us, p99 "
                      f"{r['p99']:.0f} us, misses {r['misses']:.0f}, page updates/s "
                      f"{r['updates_per_s']:.1f}", flush=True)
    base = statistics.median(r["p99"] for r in results["off"])
    for variant, rs in results.items():
        p99 = statistics.median(r["p99"] for r in rs)
        print(f"{variant:>5}: median p50 {statistics.median(r['p50'] for r in rs):.0f} us, "
              f"median p99 {p99:.0f} us ({p99 / base:.2f}x off), median misses "
              f"{statistics.median(r['misses'] for r in rs):.0f}, page updates/s "
              f"{statistics.median(r['updates_per_s'] for r in rs):.1f}")


if __name__ == "__main__":
    main()
