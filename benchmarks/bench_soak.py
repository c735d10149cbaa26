"""Soak: a long default run at 1 kHz, watching both processes for leaks and slow decay.

Runs `hil run` with the shipped defaults (configs/default.yaml: SCHED_FIFO, mlockall,
recording on) for `--minutes` (default 60), on a free loopback port, and samples the plant's
and the controller's resident memory (VmRSS), open file descriptors and thread counts once a
second from /proc. At the end it prints, per process, the first and last samples, the peak,
and the growth per hour (least-squares slope over the run after its first minute, so start-up
allocation is not read as a leak), and the deadline-miss ratio of every minute (from the
plant's recording: state k is a miss when the row of tick k+1 has answered_seq < k).

    .venv/bin/python benchmarks/bench_soak.py [--minutes 60] [--out DIR] [--json soak.json]
    .venv/bin/python benchmarks/bench_soak.py --analyse DIR --json soak.json   # print again

A minute's misses count only while the plant was under control: once the plant holds its
safe output (a watchdog trip, say), the controller's controls are ignored and every state
reads as missed, so those minutes show as `safe` instead.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PROCESSES = ("plant", "controller")
FLAG_SAFE = 1  # hil.link.messages: the plant holds its safe output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _role(pid: int) -> str | None:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    text = b" ".join(cmdline)
    if b"hil-plant" in text or b"plant_server.main" in text:
        return "plant"
    if b"hil-controller" in text or b"controller_client.main" in text:
        return "controller"
    return None


def sample(pid: int) -> tuple[int, int, int] | None:
    """(RSS in kB, open fds, threads) of `pid` from /proc, or None once it has gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    if "VmRSS" not in fields:  # a zombie: it has ended, its parent has not reaped it yet
        return None
    return int(fields["VmRSS"].split()[0]), fds, int(fields["Threads"])


def growth_per_hour(t_s: np.ndarray, values: np.ndarray, skip_s: float = 60.0) -> float:
    """Least-squares slope of `values` against time, per hour, after the first `skip_s`."""
    keep = t_s >= min(skip_s, t_s[-1] / 2)
    if keep.sum() < 2:
        return float("nan")
    return float(np.polyfit(t_s[keep], values[keep], 1)[0] * 3600.0)


def misses_per_minute(plant_rec: Path, rate_hz: float) -> list[dict[str, Any]]:
    from hil.recording.recorder import read_recording

    rec = read_recording(plant_rec)
    seq, answered = rec["seq"], rec["answered_seq"]
    safe = (rec["flags"].astype(np.int64) & FLAG_SAFE) != 0
    # State seq[i] was answered in time when the next tick's row shows it answered.
    met = answered[1:] >= seq[:-1]
    controlled = ~safe[:-1]
    per_minute = round(rate_hz * 60)
    out = []
    for start in range(0, len(met), per_minute):
        chunk, under = met[start:start + per_minute], controlled[start:start + per_minute]
        misses = int((~chunk & under).sum())
        out.append({"minute": start // per_minute + 1, "states": int(chunk.size),
                    "controlled": int(under.sum()), "misses": misses,
                    "ratio": misses / int(under.sum()) if under.any() else None})
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--out", help="run folder (default: a new temporary one)")
    parser.add_argument("--json", help="write samples and figures here")
    parser.add_argument("--analyse", help="print the figures of a finished soak in DIR again "
                        "(with --json: the samples it wrote)")
    args = parser.parse_args()
    if args.analyse:
        saved = json.loads(Path(args.json).read_text())
        print_figures(Path(args.analyse), saved["samples"], saved)
        return 0
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="hil-soak-"))
    out.mkdir(parents=True, exist_ok=True)
    duration_s = args.minutes * 60.0
    cfg = out / "soak.yaml"
    # The shipped defaults, with its own port and no HTML (plots of 3.6 M rows take minutes).
    cfg.write_text((ROOT / "configs" / "default.yaml").read_text()
                   + "record:\n  html: false\n  history_db: null\n")
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    hil = Path(sys.executable).with_name("hil")
    cmd = [str(hil), "run", "--config", str(cfg), "--duration", str(duration_s),
           "--endpoint", endpoint, "--out", str(out / "run")]
    print(f"soak: {args.minutes:g} min at 1 kHz, {endpoint}, run folder {out / 'run'}",
          flush=True)
    started = time.monotonic()
    with open(out / "hil-run.txt", "w") as log:
        run = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    pids: dict[str, int] = {}
    samples: dict[str, list[tuple[float, int, int, int]]] = {p: [] for p in PROCESSES}
    next_s = time.monotonic()
    while run.poll() is None:
        if len(pids) < len(PROCESSES):
            for child in _children(run.pid):
                role = _role(child)
                if role is not None:
                    pids.setdefault(role, child)
        now = time.monotonic()
        for role, pid in pids.items():
            found = sample(pid)
            if found is not None:
                samples[role].append((now - started, *found))
        next_s += 1.0
        time.sleep(max(0.0, next_s - time.monotonic()))
        if samples["plant"] and int(now - started) % 300 == 0:
            rss = {r: s[-1][1] // 1024 for r, s in samples.items() if s}
            print(f"  {now - started:6.0f} s  RSS MB {rss}", flush=True)
    figures: dict[str, Any] = {"minutes": args.minutes, "wall_s": time.monotonic() - started,
                               "exit_code": run.returncode,
                               "loadavg": Path("/proc/loadavg").read_text().split()[:3]}
    print_figures(out, samples, figures)
    if args.json:
        figures["samples"] = samples
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0 if run.returncode == 0 else 1


def print_figures(out: Path, samples: dict[str, list[Any]], figures: dict[str, Any]) -> None:
    report = json.loads((out / "run" / "report.json").read_text())
    figures.update({"verdict": report.get("verdict"), "deadline": report.get("deadline"),
                    "resources_report": report.get("resources"),
                    "plant_end_reason": report.get("plant_end_reason"),
                    "safe_reason": report.get("safe_reason"), "processes": {}})
    print(f"\nhil run exit {figures['exit_code']}, verdict {report.get('verdict')}, load "
          f"average at the end {' '.join(figures['loadavg'])}; safe: {report.get('safe_reason')}")
    print(f"\n{'process':<11}{'figure':<9}{'first':>10}{'last':>10}{'peak':>10}"
          f"{'growth/h':>12}")
    for role in PROCESSES:
        rows = np.array(samples[role], dtype=np.float64)
        if rows.size == 0:
            print(f"{role:<11}no samples (the process was not found)")
            continue
        t_s = rows[:, 0]
        per: dict[str, Any] = {}
        for col, (name, scale, unit) in enumerate(
                (("rss", 1 / 1024, "MB"), ("fds", 1, ""), ("threads", 1, "")), start=1):
            v = rows[:, col] * scale
            per[name] = {"first": float(v[0]), "last": float(v[-1]), "peak": float(v.max()),
                         "growth_per_hour": growth_per_hour(t_s, v), "unit": unit}
            print(f"{role:<11}{name + (' ' + unit if unit else ''):<9}{v[0]:>10.1f}"
                  f"{v[-1]:>10.1f}{v.max():>10.1f}{per[name]['growth_per_hour']:>+12.2f}")
        per["samples"] = len(rows)
        figures["processes"][role] = per
    minutes = misses_per_minute(out / "run" / "plant.rec", 1000.0)
    figures["misses_per_minute"] = minutes
    print("\ndeadline misses per minute (states under control; 'safe': the plant held its "
          "safe output all minute):")
    print(" ".join(str(m["misses"]) if m["controlled"] else "safe" for m in minutes))
    controlled = [m for m in minutes if m["controlled"]]
    if controlled:
        ratios = np.array([m["ratio"] for m in controlled])
        print(f"miss ratio per minute under control: median {np.median(ratios):.5f}, worst "
              f"{ratios.max():.5f}; total {sum(m['misses'] for m in controlled)} of "
              f"{sum(m['controlled'] for m in controlled)} states under control, "
              f"{sum(m['states'] - m['controlled'] for m in minutes)} states while safe")


if __name__ == "__main__":
    sys.exit(main())
