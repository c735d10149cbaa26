"""What the live view costs the loop: round trip p50/p99 and deadline misses of real `hil run`
runs without --watch, with --watch and no page, and with --watch and a page reading every
update (a WebSocket client standing in for the browser), interleaved in one benchmark run.
Observers of a running plant (`hil watch --endpoint`), same run: `endpoint`, hil watch
--endpoint attached with a page reading every update; `stalled`, an observer that keeps
renewing its subscription but never reads (small kernel buffers, so its queue fills within
the run and the plant drops and counts its copies).

    .venv/bin/python benchmarks/bench_watch.py [--pairs 3] [--duration 5] [--variants off,...]

Prints each run and the median of each figure per variant. Run by hand, not in the tests.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import zmq
from websockets.sync.client import connect

from hil.link.observer import Observer

VARIANTS = ("off", "watch", "page", "endpoint", "stalled")


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


def stalled_observer(endpoint: str, stop: threading.Event) -> None:
    """Subscribe, keep renewing, never read a copy."""
    observer = Observer(endpoint)
    observer._sock.sock.setsockopt(zmq.RCVBUF, 4096)  # both apply at subscribe's reconnect
    observer._sock.sock.setsockopt(zmq.RCVHWM, 1)
    try:
        observer.subscribe(60)
        while not stop.wait(0.5):
            observer._observe()  # the renewal, without reading what came
    finally:
        observer.close()


def one_run(variant: str, duration: float, out: Path) -> dict[str, float]:
    port, endpoint = free_port(), f"tcp://127.0.0.1:{free_port()}"
    cmd = [sys.executable, "-m", "hil.cli", "run", "--duration", str(duration), "--out",
           str(out), "--endpoint", endpoint]
    if variant in ("watch", "page"):
        cmd += ["--watch", "--watch-port", str(port)]
    stop, counts = threading.Event(), [0]
    reader = threading.Thread(target=page, args=(port, stop, counts), daemon=True)
    watch = None
    if variant == "endpoint":
        watch = subprocess.Popen([sys.executable, "-m", "hil.cli", "watch", "--endpoint",
                                  endpoint, "--port", str(port), "--timeout", "60"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if variant in ("page", "endpoint"):
        reader.start()
    stalled = threading.Thread(target=stalled_observer, args=(endpoint, stop), daemon=True)
    if variant == "stalled":
        stalled.start()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    stop.set()
    if watch is not None:
        watch.send_signal(signal.SIGINT)
        watch.wait(30)
    for thread in (reader, stalled):
        if thread.is_alive():
            thread.join(10)
    report = json.loads((out / "report.json").read_text())
    rt = report["latency_us"]["round_trip"]
    d = report["deadline"]
    observers = json.loads((out / "plant.json").read_text()).get("observers", {})
    return {"p50": rt["p50"], "p99": rt["p99"], "misses": d["misses"],
            "updates_per_s": counts[0] / duration, "sent": observers.get("sent", 0),
            "dropped": observers.get("dropped", 0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help=f"comma-separated, among {','.join(VARIANTS)} (off first)")
    args = parser.parse_args()
    chosen = args.variants.split(",")
    if chosen[0] != "off" or not set(chosen) <= set(VARIANTS):
        parser.error(f"--variants: off first, then any of {VARIANTS}")
    results: dict[str, list[dict[str, float]]] = {v: [] for v in chosen}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.pairs):
            for variant in results:
                r = one_run(variant, args.duration, Path(tmp) / f"{variant}{i}")
                results[variant].append(r)
                print(f"{variant:>8} run {i}: round trip p50 {r['p50']:.0f} us, p99 "
                      f"{r['p99']:.0f} us, misses {r['misses']:.0f}, page updates/s "
                      f"{r['updates_per_s']:.1f}, observations sent {r['sent']:.0f} "
                      f"dropped {r['dropped']:.0f}", flush=True)
    base = statistics.median(r["p99"] for r in results["off"])
    for variant, rs in results.items():
        p99 = statistics.median(r["p99"] for r in rs)
        print(f"{variant:>8}: median p50 {statistics.median(r['p50'] for r in rs):.0f} us, "
              f"median p99 {p99:.0f} us ({p99 / base:.2f}x off), median misses "
              f"{statistics.median(r['misses'] for r in rs):.0f}, page updates/s "
              f"{statistics.median(r['updates_per_s'] for r in rs):.1f}")


if __name__ == "__main__":
    main()
