"""`hil`: the command-line front end. `hil run` starts a plant and a controller and reports.

`hil run` starts `hil-plant` and `hil-controller` as separate processes by their entry
points (never by import), waits for both, merges their JSON into `report.json`, prints a
summary, and exits 0 on PASS, 1 on FAIL, 2 on bad usage or config.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hil.config import ConfigError, dump_config, load_config
from hil.process import EXIT_FAULT, EXIT_OK, EXIT_USAGE, new_run_id, write_json
from hil.report import build_report, summary_table

_GRACE_S = 5.0


def _entry_point(name: str, module: str) -> list[str]:
    """The console script installed beside this Python, else `python -m module`."""
    script = Path(sys.executable).with_name(name)
    if script.exists():
        return [str(script)]
    found = shutil.which(name)
    return [found] if found else [sys.executable, "-m", module]


def _run(args: argparse.Namespace) -> int:
    overrides: dict[str, Any] = {}
    if args.duration is not None:
        overrides["run.duration_s"] = args.duration
    if args.mode is not None:
        overrides["run.mode"] = args.mode
    if args.rate is not None:
        overrides["run.rate_hz"] = args.rate
    if args.controller is not None:
        overrides["controller.name"] = args.controller
        overrides["controller.gains"] = None
    if args.endpoint is not None:
        overrides["plant.endpoint"] = args.endpoint
        overrides["controller.endpoint"] = args.endpoint
    try:
        config = load_config(args.config, overrides)
    except ConfigError as exc:
        print(f"hil run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if config.plant.endpoint != config.controller.endpoint:
        print(f"hil run: plant.endpoint ({config.plant.endpoint}) and controller.endpoint "
              f"({config.controller.endpoint}) must be equal for a local run", file=sys.stderr)
        return EXIT_USAGE
    run_id = args.run_id or new_run_id()
    out = Path(args.out) if args.out else Path("runs") / run_id
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("plant.json", "controller.json", "report.json"):
        (out / stale).unlink(missing_ok=True)
    cfg_path = out / "config.yaml"
    cfg_path.write_text(dump_config(config))
    common = ["--config", str(cfg_path), "--out", str(out), "--run-id", run_id]
    plant = subprocess.Popen(_entry_point("hil-plant", "plant_server.main") + common)
    controller = subprocess.Popen(
        _entry_point("hil-controller", "controller_client.main") + common)
    procs = {"plant": plant, "controller": controller}
    interrupted = _wait(procs, config)
    codes = {name: p.returncode for name, p in procs.items()}
    results = {}
    for name in procs:
        path = out / f"{name}.json"
        try:
            results[name] = json.loads(path.read_text())
        except (OSError, ValueError):
            results[name] = {"end_reason": f"no {name}.json (exit {codes[name]})",
                             "exit_code": codes[name]}
    if EXIT_USAGE in codes.values():
        print(f"hil run: configuration refused (see above); partial reports in {out}",
              file=sys.stderr)
        return EXIT_USAGE
    report = build_report(run_id, config.model_dump(mode="json"), results["plant"],
                          results["controller"])
    if interrupted:
        report["interrupted"] = True
    write_json(out / "report.json", report)
    print(summary_table(report))
    print(f"report: {out / 'report.json'}")
    return EXIT_OK if report["verdict"] == "PASS" else EXIT_FAULT


def _wait(procs: dict[str, subprocess.Popen], config: Any) -> bool:
    """Wait for both processes; on Ctrl-C/SIGTERM, stop them so they still write reports."""
    interrupted = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal interrupted
        interrupted = True
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)

    old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        budget = 120.0 + config.run.duration_s * (1 if config.run.mode == "realtime" else 20)
        give_up = time.monotonic() + budget
        while any(p.poll() is None for p in procs.values()):
            if time.monotonic() > give_up:
                forward(signal.SIGINT, None)
                give_up = time.monotonic() + _GRACE_S
                budget = -1
            if budget < 0 and time.monotonic() > give_up:
                for p in procs.values():
                    if p.poll() is None:
                        p.kill()
            # A child that ended early (bad config, refused) should not leave the other waiting.
            if any(p.poll() not in (None, 0) for p in procs.values()):
                for p in procs.values():
                    if p.poll() is None:
                        p.send_signal(signal.SIGINT)
            time.sleep(0.05)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return interrupted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hil", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a plant and a controller on this machine and report")
    run.add_argument("--config", help="YAML config (default: built-in defaults)")
    run.add_argument("--duration", type=float, help="run length in s (simulated in lockstep)")
    run.add_argument("--mode", choices=("realtime", "lockstep"))
    run.add_argument("--rate", type=float, help="plant rate in Hz")
    run.add_argument("--controller", help="controller name, with its default gains")
    run.add_argument("--endpoint", help="ZeroMQ endpoint for both processes")
    run.add_argument("--out", help="run folder (default runs/<run-id>)")
    run.add_argument("--run-id", help=argparse.SUPPRESS)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code else EXIT_OK
    if args.command == "run":
        return _run(args)
    return EXIT_USAGE  # pragma: no cover - argparse requires a known command


if __name__ == "__main__":
    sys.exit(main())
