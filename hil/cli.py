"""`hil`: the command-line front end. `hil run` starts a plant and a controller and reports.

`hil run` starts `hil-plant` and `hil-controller` as separate processes by their entry
points (never by import), waits for both, merges their JSON into `report.json`, prints a
summary, writes `report.html` with its plots, appends the run to the history database, and
exits 0 on PASS, 1 on FAIL, 2 on bad usage or config.

The other commands work on finished runs: `hil report` (re)writes a run's HTML report,
`hil export` writes its plant recording as CSV or NPZ, `hil replay` feeds its recorded
states to a fresh controller (`python -m controller_client.replay`, started as a process),
`hil history` lists past runs and `hil compare` puts two runs side by side.
`hil estop` and `hil clear` talk to a running plant (hil/operator.py).
`hil rig-emulator` runs an emulated rig on a pseudo-terminal (`python -m
plant_server.rig_emulator`); with `rig_emulator.enabled`, `hil run` starts it before the
plant, points `serial.port` at it, stops it after the run and adds its `rig.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hil import history, operator, security
from hil.config import Config, ConfigError, dump_config, load_config
from hil.export import FORMATS, export_recording
from hil.html_report import write_html_report
from hil.live import LiveStatus, StatusPrinter
from hil.logs import CONSOLE_LEVEL_ENV
from hil.process import EXIT_FAULT, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, new_run_id, write_json
from hil.recorder import RecordingError
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
    for stale in ("plant.json", "controller.json", "report.json", "plant.rec", "controller.rec",
                  "report.html", "rig.json", _RIG_LINK):
        (out / stale).unlink(missing_ok=True)
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if config.rig_emulator.enabled:  # the plant's serial port is the emulator's
        config = config.model_copy(update={"serial": config.serial.model_copy(
            update={"port": str((out / _RIG_LINK).absolute())})})
    cfg_path = out / "config.yaml"
    cfg_path.write_text(dump_config(config))
    common = ["--config", str(cfg_path), "--out", str(out), "--run-id", run_id]
    emulator = None
    if config.rig_emulator.enabled:
        emulator = _start_rig_emulator(cfg_path, out, config.rig_emulator.ready_timeout_s)
        if isinstance(emulator, int):
            return emulator
    live = config.record.enabled and sys.stdout.isatty()
    # With a live status line, the children print warnings only; all goes to their logs.
    env = {**os.environ, CONSOLE_LEVEL_ENV: "warning"} if live else None
    plant = subprocess.Popen(_entry_point("hil-plant", "plant_server.main") + common, env=env)
    controller = subprocess.Popen(
        _entry_point("hil-controller", "controller_client.main") + common, env=env)
    procs = {"plant": plant, "controller": controller}
    status = StatusPrinter(LiveStatus(out / "plant.rec")) if live else None
    interrupted = _wait(procs, config, status.tick if status else None)
    if status:
        status.finish()
    rig = _stop_rig_emulator(emulator, out) if emulator is not None else None
    codes = {name: p.returncode for name, p in procs.items()}
    results = _read_results(out, codes)
    if EXIT_USAGE in codes.values():
        print(f"hil run: configuration refused (see above); partial reports in {out}",
              file=sys.stderr)
        return EXIT_USAGE
    report = build_report(run_id, config.model_dump(mode="json"), results["plant"],
                          results["controller"])
    report["started_at"] = started_at
    if rig is not None:
        report["rig_emulator"] = rig
    if interrupted:
        report["interrupted"] = True
    write_json(out / "report.json", report)
    print(summary_table(report))
    print(f"report: {out / 'report.json'}")
    _finish(out, report, config)
    return EXIT_OK if report["verdict"] == "PASS" else EXIT_FAULT


_RIG_LINK = "rig.pty"


def _start_rig_emulator(cfg_path: Path, out: Path, ready_timeout_s: float
                        ) -> subprocess.Popen | int:
    """Start the emulated rig; return it once its port is ready, or an exit status."""
    link = out / _RIG_LINK
    # Its own session: a Ctrl-C stops the plant and the controller (which report it), not the
    # rig under them, which would read as an unplug; it is stopped after them.
    proc = subprocess.Popen([sys.executable, "-m", "plant_server.rig_emulator", "--config",
                             str(cfg_path), "--out", str(out), "--link", str(link)],
                            start_new_session=True)
    give_up = time.monotonic() + ready_timeout_s
    while not link.is_symlink():
        if proc.poll() is not None:
            print(f"hil run: the rig emulator exited with {proc.returncode} before its port "
                  "was ready (see above)", file=sys.stderr)
            return EXIT_USAGE if proc.returncode == EXIT_USAGE else EXIT_FAULT
        if time.monotonic() > give_up:
            proc.kill()
            proc.wait()
            print(f"hil run: the rig emulator's port {link} was not ready within "
                  f"{ready_timeout_s:g} s (rig_emulator.ready_timeout_s)", file=sys.stderr)
            return EXIT_FAULT
        time.sleep(0.02)
    return proc


def _stop_rig_emulator(proc: subprocess.Popen, out: Path) -> dict[str, Any] | None:
    """Stop the emulated rig (it may have ended itself: unplugged) and read its rig.json."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    try:
        return json.loads((out / "rig.json").read_text())
    except (OSError, ValueError):
        return {"end_reason": f"no rig.json (exit {proc.returncode})"}


def _rig_emulator(args: list[str]) -> int:
    command = [sys.executable, "-m", "plant_server.rig_emulator", *args]
    os.execv(sys.executable, command)
    return EXIT_FAULT  # not reached: execv replaces this process


def _read_results(out: Path, codes: dict[str, int | None]) -> dict[str, dict[str, Any]]:
    """Each process's JSON report, or a stand-in saying why there is none."""
    results = {}
    for name, code in codes.items():
        path = out / f"{name}.json"
        try:
            results[name] = json.loads(path.read_text())
        except (OSError, ValueError):
            results[name] = {"end_reason": f"no {name}.json (exit {code})", "exit_code": code}
    return results


def _finish(out: Path, report: dict[str, Any], config: Config) -> None:
    """The HTML report and the history entry; a failure here is reported, never fatal."""
    if config.record.html:
        try:
            print(f"html:   {write_html_report(out)}")
        except Exception as exc:  # plotting must not turn a finished run into a crash
            print(f"hil run: no HTML report: {type(exc).__name__}: {exc}", file=sys.stderr)
    if config.record.history_db:
        try:
            history.append_run(config.record.history_db, report, out)
            print(f"history: {config.record.history_db} (run {report['run_id']})")
        except (history.HistoryError, OSError) as exc:
            print(f"hil run: not added to the history: {exc}", file=sys.stderr)


def _report(args: argparse.Namespace) -> int:
    out = Path(args.run_dir)
    path = out / "report.json"
    try:
        if path.exists():
            report = json.loads(path.read_text())
        else:  # `hil run` itself was stopped: merge what the processes left
            config = load_config(out / "config.yaml")
            results = _read_results(out, {"plant": None, "controller": None})
            run_id = results["plant"].get("run_id") or out.name
            report = build_report(run_id, config.model_dump(mode="json"), results["plant"],
                                  results["controller"])
            write_json(path, report)
        page = write_html_report(out)
    except (OSError, ValueError, ConfigError) as exc:
        print(f"hil report: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(summary_table(report))
    print(f"html: {page}")
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    source = Path(args.run_dir) / "plant.rec"
    if not source.exists():
        print(f"hil export: no {source} (was recording off, or did the plant not start?)",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        rec = export_recording(args.run_dir, args.format, args.output)
    except (OSError, RecordingError, ValueError) as exc:
        print(f"hil export: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if rec.problem:
        print(f"hil export: {rec.truncated_bytes} bytes at the end of plant.rec ignored "
              f"({rec.problem})", file=sys.stderr)
    elif not rec.complete:
        print("hil export: plant.rec was not closed (its process was killed); all its rows "
              "were exported", file=sys.stderr)
    print(f"{rec.rows} plant steps, {len(rec.columns)} columns -> {args.output}")
    return EXIT_OK


def _replay(args: argparse.Namespace) -> int:
    command = [sys.executable, "-m", "controller_client.replay", args.run_dir,
               "--tolerance", str(args.tolerance), *(["--json"] if args.json else [])]
    return subprocess.run(command, check=False).returncode


def _history(args: argparse.Namespace) -> int:
    try:
        runs = history.list_runs(args.db, args.limit)
    except (history.HistoryError, ValueError) as exc:
        print(f"hil history: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not runs:
        print(f"no runs in {args.db}")
        return EXIT_OK
    print(f"{'date':<21}{'run id':<24}{'plant':<10}{'controller':<16}{'mode':<10}"
          f"{'verdict':<8}{'score':>6}{'rt p50':>9}{'rt p99':>9}{'misses':>9}")
    for r in runs:
        print(f"{r['date']:<21}{r['run_id']:<24}{r['plant'] or '-':<10}"
              f"{r['controller'] or '-':<16}{r['mode'] or '-':<10}{r['verdict'] or '-':<8}"
              + "".join(f"{_num(r[k], spec):>{width}}" for k, spec, width in (
                  ("score", ".1f", 6), ("round_trip_p50_us", ".1f", 9),
                  ("round_trip_p99_us", ".1f", 9), ("miss_ratio", ".2%", 9))))
    print("(latencies in us, newest first)")
    return EXIT_OK


def _num(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def _load_run(ref: str, db: str) -> dict[str, Any]:
    """A run's report from its folder, else from the history by (a prefix of) its run id."""
    folder = Path(ref)
    if (folder / "report.json").exists():
        return json.loads((folder / "report.json").read_text())
    run = history.get_run(db, ref)
    if run is None:
        raise history.HistoryError(f"{ref!r} is neither a run folder with a report.json nor a "
                                   f"run id in {db}")
    return run["report"]


def _compare(args: argparse.Namespace) -> int:
    try:
        a, b = _load_run(args.run_a, args.db), _load_run(args.run_b, args.db)
    except (history.HistoryError, OSError, ValueError) as exc:
        print(f"hil compare: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(history.format_compare(history.compare(a, b)))
    return EXIT_OK


def _keygen(args: argparse.Namespace) -> int:
    try:
        made = security.generate(args.dir)
    except security.CurveKeyError as exc:
        print(f"hil keygen: {exc}", file=sys.stderr)
        return EXIT_USAGE
    for path in made:
        print(path)
    print(f"set security.curve: true and security.keys_dir: {args.dir}; copy plant.key and "
          "the controller's pair to a controller on another machine")
    return EXIT_OK


def _estop(args: argparse.Namespace) -> int:
    try:
        answer = operator.estop(args.endpoint, args.reason, args.timeout, args.keys)
    except security.CurveKeyError as exc:
        print(f"hil estop: --keys: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except operator.NoAnswer as exc:
        print(f"hil estop: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    print(f"e-stop: {answer}")
    return EXIT_OK


def _clear(args: argparse.Namespace) -> int:
    try:
        answer = operator.clear(args.endpoint, args.timeout, args.keys)
    except security.CurveKeyError as exc:
        print(f"hil clear: --keys: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except operator.NoAnswer as exc:
        print(f"hil clear: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    print(f"clear: {answer}")
    return EXIT_OK if answer.startswith(("cleared", "nothing")) else EXIT_FAULT


def _wait(procs: dict[str, subprocess.Popen], config: Any,
          on_tick: Callable[[], None] | None = None) -> bool:
    """Wait for both processes; on Ctrl-C/SIGTERM, stop them so they still write reports.

    `on_tick` is called every 50 ms while waiting (the live status line).
    """
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
            if on_tick is not None:
                on_tick()
            time.sleep(0.05)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    return interrupted


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["rig-emulator"]:  # all that follows is the emulator's, options included
        return _rig_emulator(argv[1:])
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
    run.set_defaults(handler=_run)
    report = sub.add_parser("report", help="(re)write a run's report.html and plots")
    report.add_argument("run_dir")
    report.set_defaults(handler=_report)
    export = sub.add_parser("export", help="a run's plant recording as a table")
    export.add_argument("run_dir")
    export.add_argument("--format", choices=FORMATS, default="csv")
    export.add_argument("--output", required=True, help="file to write")
    export.set_defaults(handler=_export)
    replay = sub.add_parser("replay", help="feed a run's recorded states to a fresh controller "
                                           "and check it reproduces the recorded controls")
    replay.add_argument("run_dir")
    replay.add_argument("--tolerance", type=float, default=1e-9, help="N (default 1e-9)")
    replay.add_argument("--json", action="store_true")
    replay.set_defaults(handler=_replay)
    hist = sub.add_parser("history", help="list past runs, newest first")
    hist.add_argument("--db", default=str(history.DEFAULT_PATH))
    hist.add_argument("--limit", type=int, default=20)
    hist.set_defaults(handler=_history)
    comp = sub.add_parser("compare", help="two runs' gates and latencies side by side")
    comp.add_argument("run_a", help="run folder or run id (a unique prefix will do)")
    comp.add_argument("run_b")
    comp.add_argument("--db", default=str(history.DEFAULT_PATH))
    comp.set_defaults(handler=_compare)
    for name, text in (("estop", "put a running plant in its safe state and end its run"),
                       ("clear", "clear a running plant's latched safe state")):
        op = sub.add_parser(name, help=text)
        op.add_argument("--endpoint", required=True, help="the plant's ZeroMQ endpoint")
        op.add_argument("--timeout", type=float, default=2.0, help="s to wait for the answer")
        op.add_argument("--keys", help="CURVE keys dir, for a plant with security.curve on")
        if name == "estop":
            op.add_argument("--reason", default="hil estop", help="recorded in the report")
        op.set_defaults(handler=_estop if name == "estop" else _clear)
    keygen = sub.add_parser("keygen", help="make CURVE keys for the plant and its clients")
    keygen.add_argument("dir", help="where to write them (security.keys_dir)")
    keygen.set_defaults(handler=_keygen)
    rig = sub.add_parser("rig-emulator", add_help=False,
                         help="an emulated rig on a pseudo-terminal (its options: "
                              "hil rig-emulator --help)")
    rig.add_argument("args", nargs=argparse.REMAINDER)
    rig.set_defaults(handler=lambda a: _rig_emulator(a.args))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code else EXIT_OK
    try:
        return args.handler(args)
    except BrokenPipeError:
        # `hil history | head`: the reader left. Point stdout at /dev/null so the
        # interpreter's final flush does not raise again, and end quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
