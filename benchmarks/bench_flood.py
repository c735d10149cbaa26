"""Deadline misses of a default run with and without a junk flood on the plant's endpoint.

Each repetition runs the shipped default (configs/default.yaml: 1 kHz real time, SCHED_FIFO,
mlockall) twice, alternating, on its own loopback port: once undisturbed, once with
tests/faults/junk_peer.py sending `--junk` (1000) junk messages of mixed kinds to the plant
`--flood-at` seconds after the controller attached. It prints, per run, the deadline misses,
the plant's worst lateness, the junk the plant counted (decoded and rejected, and the excess
over the per-tick budget counted unread) and the verdict; then the medians, and how many
flooded runs passed.

    .venv/bin/python benchmarks/bench_flood.py [--reps 5] [--duration 8] [--json out.json]
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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
JUNK_PEER = ROOT / "tests" / "faults" / "junk_peer.py"
START_TIMEOUT_S = 60.0


def _free_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def _wait_for_event(log: Path, event: str, proc: subprocess.Popen, timeout_s: float) -> None:
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up:
        if log.exists() and f'"event": "{event}"' in log.read_text():
            return
        if proc.poll() is not None:
            raise RuntimeError(f"hil run exited ({proc.returncode}) before {event!r}")
        time.sleep(0.02)
    raise RuntimeError(f"no {event!r} in {log} within {timeout_s} s")


def one_run(folder: Path, duration_s: float, junk: int, flood_at_s: float,
            seed: int) -> dict[str, Any]:
    endpoint = _free_endpoint()
    cfg = folder / "config.yaml"
    cfg.write_text((ROOT / "configs" / "default.yaml").read_text()
                   + "record:\n  html: false\n  history_db: null\n")
    out = folder / "run"
    peer = None
    if junk:
        peer = subprocess.Popen([sys.executable, str(JUNK_PEER), endpoint, str(junk), str(seed)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    run = subprocess.Popen([str(Path(sys.executable).with_name("hil")), "run", "--config",
                            str(cfg), "--duration", str(duration_s), "--endpoint", endpoint,
                            "--out", str(out)], cwd=ROOT, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    sent: dict[str, Any] = {}
    try:
        if peer is not None:
            assert peer.stdin is not None and peer.stdout is not None
            _wait_for_event(out / "plant.log.jsonl", "controller attached", run, START_TIMEOUT_S)
            time.sleep(flood_at_s)  # the flood's moment within the run, not a wait for an event
            peer.stdin.write("go\n")
            peer.stdin.flush()
            sent = json.loads(peer.stdout.readline() or "{}")
        text, _ = run.communicate(timeout=duration_s + 120)
    finally:
        if peer is not None:
            peer.communicate(timeout=30)  # closes its stdin: it leaves
        if run.poll() is None:
            run.kill()
            run.wait()
    report = json.loads((out / "report.json").read_text())
    plant = json.loads((out / "plant.json").read_text())
    by_kind = plant.get("rejected_by_kind") or {}
    return {"flood": bool(junk), "exit_code": run.returncode, "verdict": report["verdict"],
            "misses": report["deadline"]["misses"], "total": report["deadline"]["total"],
            "plant_lateness_max_us": report["latency_us"]["plant_lateness"]["max"],
            "rejected": plant.get("rejected_messages"),
            "over_budget": by_kind.get("over_budget", 0), "sent": sent.get("sent", 0),
            "failed_to_send": sent.get("failed", 0),
            "output_tail": "" if report["verdict"] == "PASS" else text[-2000:]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--junk", type=int, default=1000)
    parser.add_argument("--flood-at", type=float, default=2.0,
                        help="seconds after the controller attached")
    parser.add_argument("--json", help="write every run's figures here")
    parser.add_argument("--keep", help="keep the run folders here (default: a temporary one)")
    args = parser.parse_args()
    runs = []
    with tempfile.TemporaryDirectory(prefix="hil-flood-") as scratch:
        tmp = args.keep or scratch
        for rep in range(args.reps):
            for junk in (0, args.junk):
                folder = Path(tmp) / f"{rep}-{junk}"
                folder.mkdir(parents=True)
                r = one_run(folder, args.duration, junk, args.flood_at, seed=rep)
                runs.append(r)
                print(f"rep {rep}  flood {junk:>5}  misses {r['misses']:>3} of {r['total']}  "
                      f"plant lateness max {r['plant_lateness_max_us']:>8.0f} us  junk sent "
                      f"{r['sent']:>4} counted {r['rejected']:>4} (over budget "
                      f"{r['over_budget']:>4})  {r['verdict']}", flush=True)
                if r["output_tail"]:
                    print(r["output_tail"])
    print(f"\nload average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    for flood in (False, True):
        sel = [r for r in runs if r["flood"] == flood]
        print(f"{'with' if flood else 'without'} a {args.junk}-message flood: misses median "
              f"{statistics.median(r['misses'] for r in sel):g} "
              f"({', '.join(str(r['misses']) for r in sel)}), plant lateness max median "
              f"{statistics.median(r['plant_lateness_max_us'] for r in sel):.0f} us, "
              f"PASS {sum(r['verdict'] == 'PASS' for r in sel)} of {len(sel)}")
    if args.json:
        Path(args.json).write_text(json.dumps(runs, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
