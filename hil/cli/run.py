"""`hil run`: start a plant and a controller on this machine, wait, merge, report."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from hil.app.exits import EXIT_FAULT, EXIT_OK, EXIT_USAGE
from hil.cli import checks, forkstart
from hil.cli.forkstart import Child

if TYPE_CHECKING:
    from hil.config import Config
    from hil.reporting.liveview.server import LiveViewServer

_GRACE_S = 5.0
_RIG_LINK = "rig.pty"


def add_parser(sub: Any) -> None:
    run = sub.add_parser("run", help="run a plant and a controller on this machine and report")
    run.add_argument("--config", help="YAML config (default: built-in defaults)")
    run.add_argument("--duration", type=float, help="run length in s (simulated in lockstep)")
    run.add_argument("--mode", choices=("realtime", "lockstep"))
    run.add_argument("--rate", type=float, help="plant rate in Hz")
    run.add_argument("--controller", help="controller name, with its default gains")
    run.add_argument("--controller-cmd", metavar="CMD",
                     help="run the program CMD (a command line) in place of hil-controller, "
                          "e.g. a C controller on libhil; it gets the endpoint, mode and run "
                          "folder in HIL_* environment variables (controller.command; "
                          "clients/c/README.md)")
    run.add_argument("--endpoint", help="ZeroMQ endpoint for both processes")
    run.add_argument("--transport", choices=("zmq", "shm"),
                     help="data plane: zmq, or shm (shared memory, one host; run.transport)")
    run.add_argument("--out", help="run folder (default runs/<run-id>); a folder holding an "
                                   "earlier run is refused unless --overwrite")
    run.add_argument("--overwrite", action="store_true",
                     help="replace the run in --out: its reports, recordings, logs and plots "
                          "are removed first")
    run.add_argument("--run-id", help=argparse.SUPPRESS)
    run.add_argument("--timeout", type=float, metavar="S",
                     help="stop the run after S s of wall time (default: 120 s plus the "
                          "duration, x20 in lockstep); then SIGINT, and SIGKILL after a grace")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     dest="settings",
                     help="set one config key for this run, e.g. --set record.html=false or "
                          "--set controller.gains=[2,16,42,7.2,20,5] (VALUE is YAML; "
                          "repeatable; after --config, before the options above)")
    run.add_argument("--watch", action="store_true",
                     help="serve a live view of the run on http://HOST:PORT/ (hil watch)")
    run.add_argument("--watch-port", type=int, default=8700, help="live view port (8700)")
    run.add_argument("--watch-host", default="127.0.0.1",
                     help="live view address (loopback; 0.0.0.0 shows it to the network)")
    run.set_defaults(handler=run_command)


def parse_settings(settings: list[str]) -> dict[str, Any]:
    """`--set KEY=VALUE` options as dotted-key overrides; VALUE is read as YAML (a number,
    true/false, null, a list). ValueError names the option that is not KEY=VALUE."""
    import yaml

    overrides: dict[str, Any] = {}
    for item in settings:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ValueError(f"--set {item!r}: expected KEY=VALUE with a dotted config key, "
                             "e.g. --set record.html=false")
        try:
            overrides[key] = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as exc:
            raise ValueError(f"--set {key}: {text!r} is not a YAML value: "
                             f"{str(exc).splitlines()[0]}") from None
        except RecursionError:  # a value nested thousands deep
            raise ValueError(f"--set {key}: the value is nested too deep to be a config "
                             "value") from None
    return overrides


def _entry_point(name: str, module: str) -> list[str]:
    """The console script installed beside this Python, else `python -m module`."""
    script = Path(sys.executable).with_name(name)
    if script.exists():
        return [str(script)]
    found = shutil.which(name)
    return [found] if found else [sys.executable, "-m", module]


def run_command(args: argparse.Namespace) -> int:
    """Start the run, wait for it, stop what is left, merge the report: each a phase below,
    each returning an exit status instead of going on when it cannot."""
    setup = _prepare(args)
    if isinstance(setup, int):
        return setup
    started = _start(args, setup)
    if isinstance(started, int):
        return started
    ended = _wait_for_run(args, setup, started)
    return _merge_report(setup, started, ended)


@dataclass(frozen=True)
class RunSetup:
    """What the run is: its config (as written to `cfg_path` in the run folder `out`)."""

    config: Config
    run_id: str
    out: Path
    cfg_path: Path
    started_at: str
    model: Any = None  # the built-in plant model, checked (None: a lab's plant or an FMU)


@dataclass(frozen=True)
class Started:
    """What the start phase left running: the processes, the live view, the rig emulator."""

    procs: dict[str, Child]
    watch: LiveViewServer | None
    emulator: subprocess.Popen[Any] | None
    live: bool


@dataclass(frozen=True)
class Ended:
    """How the run ended: the wait's outcome, its budget, the processes' exit codes and the
    rig emulator's rig.json (None: no emulator)."""

    waited: WaitResult
    budget_s: float
    codes: dict[str, int | None]
    rig: dict[str, Any] | None


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    """The config overrides that `hil run`'s options and `--set`s say; ValueError naming a
    bad --set."""
    overrides = parse_settings(args.settings)
    options = {"run.duration_s": args.duration, "run.mode": args.mode, "run.rate_hz": args.rate,
               "run.transport": args.transport, "plant.endpoint": args.endpoint,
               "controller.endpoint": args.endpoint, "controller.name": args.controller,
               "controller.command": args.controller_cmd}
    overrides.update({key: value for key, value in options.items() if value is not None})
    if args.controller is not None:
        overrides["controller.gains"] = None  # the named controller's defaults
    return overrides


def _prepare(args: argparse.Namespace) -> RunSetup | int:
    """Phase 1: the options, the config and the run folder, checked; the config written."""
    from hil.app import run_folder
    from hil.app.foreign_controller import controller_argv
    from hil.app.process import new_run_id
    from hil.config import ConfigError, dump_config, load_config

    if args.controller is not None and args.controller_cmd is not None:
        print("hil run: --controller names a law for hil-controller, --controller-cmd runs a "
              "program of your own in its place: give one of them", file=sys.stderr)
        return EXIT_USAGE
    if args.timeout is not None and not 0 < args.timeout < math.inf:
        print(f"hil run: --timeout must be > 0 s, got {args.timeout:g}: give the run's "
              "wall-time limit in s, a finite number", file=sys.stderr)
        return EXIT_USAGE
    try:
        checks.port("--watch-port", args.watch_port)
        config = load_config(args.config, overrides_from(args))
        if config.plant.endpoint != config.controller.endpoint:
            raise ConfigError(f"plant.endpoint ({config.plant.endpoint}) and "
                              f"controller.endpoint ({config.controller.endpoint}) must be "
                              "equal for a local run")
        if config.controller.command is not None:
            controller_argv(config.controller.command)  # before anything starts
        model = _checked_built_in_model(config)
        run_id = args.run_id or new_run_id()
        out = run_folder.claim(str(Path("runs") / run_id) if args.out is None else args.out,
                               args.overwrite)
    except (ValueError, ConfigError) as exc:  # a bad --set, config, command or run folder
        print(f"hil run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if config.rig_emulator.enabled:  # the plant's serial port is the emulator's
        config = config.model_copy(update={"serial": config.serial.model_copy(
            update={"port": str((out / _RIG_LINK).absolute())})})
    cfg_path = out / "config.yaml"
    cfg_path.write_text(dump_config(config))
    return RunSetup(config, run_id, out, cfg_path, started_at, model)


def _start(args: argparse.Namespace, setup: RunSetup) -> Started | int:
    """Phase 2: the live view's address (a port in use refuses the run before anything
    starts), the rig emulator, the plant and the controller, then the live view served (its
    thread after the forks: hil/cli/forkstart.py forks only while no other thread runs)."""
    from hil.app.logs import CONSOLE_LEVEL_ENV

    config, out = setup.config, setup.out
    watch: LiveViewServer | None = None
    if args.watch:
        from hil.cli.watch import bind_run_view

        view = bind_run_view("hil run", out, config.record.enabled, args.watch_host,
                             args.watch_port)
        if isinstance(view, int):
            return view
        watch = view
    emulator: subprocess.Popen[Any] | None = None
    if config.rig_emulator.enabled:
        rig = _start_rig_emulator(setup.cfg_path, out, config.rig_emulator.ready_timeout_s,
                                  config.rig_emulator.kind)
        if isinstance(rig, int):
            if watch is not None:
                watch.stop()
            return rig
        emulator = rig
    live = config.record.enabled and sys.stdout.isatty()
    # With a live status line, the children print warnings only; all goes to their logs.
    env = {CONSOLE_LEVEL_ENV: "warning"} if live else {}
    procs = _start_programs(setup, env, () if watch is None else (watch.fileno,))
    if watch is not None and not isinstance(procs, int):
        from hil.cli.watch import serve_view

        if isinstance(serve_view("hil run", watch), int):
            _wait(procs, 0.0)  # stopped at once: SIGINT, then SIGKILL after a grace
            procs = EXIT_USAGE
    if isinstance(procs, int):
        if watch is not None:
            watch.stop()
        if emulator is not None:
            _stop_rig_emulator(emulator, out)
        return procs
    return Started(procs, watch, emulator, live)


def _start_programs(setup: RunSetup, env: dict[str, str], not_theirs: tuple[int, ...]
                    ) -> dict[str, Child] | int:
    """The plant and the controller (ours, or the config's command); EXIT_USAGE, said, if
    the controller cannot start. `not_theirs`: descriptors a forked program closes first
    (the live view's socket)."""
    config = setup.config
    common = ["--config", str(setup.cfg_path), "--out", str(setup.out), "--run-id",
              setup.run_id]
    ours = ["hil-plant"] + (["hil-controller"] if config.controller.command is None else [])
    fork = forkstart.can_fork()
    if fork:
        forkstart.preload(ours)
        _warm_model(config, setup.model)
    plant = _start_program("hil-plant", common, env, fork, not_theirs)
    try:
        controller = (_start_program("hil-controller", common, env, fork, not_theirs)
                      if config.controller.command is None
                      else _start_foreign_controller(setup, env))
    except OSError as exc:  # checked in _prepare, but a file can change (permissions, removed)
        print(f"hil run: controller.command: cannot start it: {exc}", file=sys.stderr)
        _wait({"plant": plant}, 0.0)  # stopped at once: SIGINT, then SIGKILL after a grace
        return EXIT_USAGE
    return {"plant": plant, "controller": controller}


def _checked_built_in_model(config: Config) -> Any:
    """A built-in plant model, its params and initial state checked as the plant checks them
    (ConfigError), before a run folder or a process exists; None for a lab's plant or an FMU,
    the plant program's to load and check: its code runs there, not in `hil run`."""
    from hil.config import build_plant_model
    from hil.dynamics import MODELS

    return build_plant_model(config) if config.plant.model in MODELS else None


def _warm_model(config: Config, model: Any) -> None:
    """The built-in plant model (if any) stepped once here, its cached numba kernel loaded,
    before the forks: the plant steps it and the controller's laws take it as their nominal
    model, and both inherit it instead of each loading it (benchmarks/bench_start.py)."""
    import numpy as np

    if model is None:
        return
    state = np.array(config.plant.initial_state, dtype=np.float64)
    model.step(state, np.zeros(model.inputs.n), 1e-3, np.empty_like(state))


def _start_program(name: str, argv: list[str], env: dict[str, str], fork: bool,
                   not_theirs: tuple[int, ...] = ()) -> Child:
    """`hil-plant` or `hil-controller` on `argv`: forked from this process, which imported it
    (hil/cli/forkstart.py; the child closes `not_theirs` first), or its console script when
    this process cannot fork (which inherits none of our descriptors)."""
    if fork:
        return forkstart.fork_program(name, argv, env, not_theirs)
    return subprocess.Popen(_entry_point(name, forkstart.PROGRAMS[name]) + argv,
                            env={**os.environ, **env} if env else None)


def _start_foreign_controller(setup: RunSetup, env: dict[str, str]) -> Child:
    """The program `controller.command` names, with the run in its environment
    (hil/app/foreign_controller.py)."""
    from hil.app.foreign_controller import controller_argv, controller_env

    command = setup.config.controller.command
    assert command is not None
    run_env = {**os.environ, **env,
               **controller_env(setup.config, setup.out, setup.run_id, setup.cfg_path)}
    return subprocess.Popen(controller_argv(command), env=run_env)


def _wait_for_run(args: argparse.Namespace, setup: RunSetup, started: Started) -> Ended:
    """Phase 3: wait for the processes (stopping, then killing, what outlives the budget:
    `_wait`), then stop the live view and the rig emulator."""
    from hil.reporting.live import LiveStatus, StatusPrinter

    status = StatusPrinter(LiveStatus(setup.out / "plant.rec")) if started.live else None
    budget_s = args.timeout if args.timeout is not None else wait_budget_s(setup.config)
    waited = _wait(started.procs, budget_s, _GRACE_S, status.tick if status else None)
    if status:
        status.finish()
    if started.watch is not None:
        started.watch.stop()
    rig = (_stop_rig_emulator(started.emulator, setup.out) if started.emulator is not None
           else None)
    return Ended(waited, budget_s, {name: p.returncode for name, p in started.procs.items()},
                 rig)


def _merge_report(setup: RunSetup, started: Started, ended: Ended) -> int:
    """Phase 4: merge the processes' reports into report.json, print the summary, write the
    HTML and the history entry; the run's exit status."""
    from hil.app.process import write_json
    from hil.reporting.report import build_report, summary_table

    out, waited = setup.out, ended.waited
    results = read_results(out, ended.codes)
    if setup.config.controller.command is not None:  # its exit status, whatever it wrote
        results["controller"]["exit_code"] = ended.codes["controller"]
    if EXIT_USAGE in ended.codes.values():
        print(f"hil run: configuration refused (see above); partial reports in {out}",
              file=sys.stderr)
        return EXIT_USAGE
    report = build_report(setup.run_id, setup.config.model_dump(mode="json"),
                          results["plant"], results["controller"])
    report["started_at"] = setup.started_at
    if ended.rig is not None:
        report["rig_emulator"] = ended.rig
    if waited.outcome == "interrupted":
        report["interrupted"] = True
    elif waited.outcome == "timed_out":
        report["timed_out"] = True
        report["timeout_s"] = ended.budget_s
        print(f"hil run: the run did not end within {ended.budget_s:g} s (--timeout): stopped "
              "it" + (f"; killed {', '.join(waited.killed)} after a {_GRACE_S:g} s grace"
                      if waited.killed else ""), file=sys.stderr)
    if waited.killed:
        report["killed"] = list(waited.killed)
    write_json(out / "report.json", report)
    print(summary_table(report))
    print(f"report: {out / 'report.json'}")
    _finish(out, report, setup.config)
    return EXIT_OK if report["verdict"] == "PASS" else EXIT_FAULT


def _start_rig_emulator(cfg_path: Path, out: Path, ready_timeout_s: float,
                        kind: str = "python") -> subprocess.Popen[Any] | int:
    """Start the emulated rig; return it once its port is ready, or an exit status."""
    link = out / _RIG_LINK
    # python: the Python emulator; host, qemu: the C firmware (plant_server/firmware_rig.py)
    module = "plant_server.rig_emulator" if kind == "python" else "plant_server.firmware_rig"
    # Its own session: a Ctrl-C stops the plant and the controller (which report it), not the
    # rig under them, which would read as an unplug; it is stopped after them.
    proc = subprocess.Popen([sys.executable, "-m", module, "--config",
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


def _stop_rig_emulator(proc: subprocess.Popen[Any], out: Path) -> dict[str, Any] | None:
    """Stop the emulated rig (it may have ended itself: unplugged) and read its rig.json."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=_GRACE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    try:
        rig: dict[str, Any] = json.loads((out / "rig.json").read_text())
        return rig
    except (OSError, ValueError):
        return {"end_reason": f"no rig.json (exit {proc.returncode})"}


def read_results(out: Path, codes: dict[str, int | None]) -> dict[str, dict[str, Any]]:
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
    from hil.reporting import history

    if config.record.html:
        try:
            from hil.reporting.html import write_html_report

            print(f"html:   {write_html_report(out)}")
        except Exception as exc:  # plotting must not turn a finished run into a crash
            print(f"hil run: no HTML report: {type(exc).__name__}: {exc}", file=sys.stderr)
    if config.record.history_db:
        try:
            history.append_run(config.record.history_db, report, out)
            print(f"history: {config.record.history_db} (run {report['run_id']})")
        except (history.HistoryError, OSError) as exc:
            print(f"hil run: not added to the history: {exc}", file=sys.stderr)


def wait_budget_s(config: Config) -> float:
    """How long `hil run` waits for its processes before stopping them: start-up and report
    writing (120 s) plus the run, which in lockstep may run slower than real time."""
    return 120.0 + config.run.duration_s * (1 if config.run.mode == "realtime" else 20)


@dataclass(frozen=True)
class WaitResult:
    """How the wait for the run's processes ended.

    `outcome`: "finished" (they ended by themselves), "interrupted" (Ctrl-C or SIGTERM to
    `hil run`), "timed_out" (the budget ran out). `killed`: the processes still running a
    grace after they were asked to stop, ended with SIGKILL.
    """

    outcome: Literal["finished", "interrupted", "timed_out"]
    killed: tuple[str, ...] = ()


def _wait(procs: dict[str, Child], budget_s: float, grace_s: float = _GRACE_S,
          on_tick: Callable[[], None] | None = None, poll_s: float = 0.05) -> WaitResult:
    """Wait for the processes, in phases, so that they still write their reports:

    1. running, until all have ended, or `budget_s` has passed (timed out), or Ctrl-C/SIGTERM
       (interrupted), or one has failed (the others have nothing left to do);
    2. stopping: SIGINT to every process still running, once, then wait up to `grace_s`;
    3. killing: SIGKILL to whichever is still running, and reap it.

    `on_tick` is called every `poll_s` while waiting (the live status line).
    """
    outcome: Literal["finished", "interrupted", "timed_out"] = "finished"
    stop_sent_s: float | None = None  # monotonic time of phase 2's SIGINT

    def running() -> list[Child]:
        return [p for p in procs.values() if p.poll() is None]

    def ask_to_stop() -> None:
        nonlocal stop_sent_s
        if stop_sent_s is None:
            stop_sent_s = time.monotonic()
        for p in running():
            p.send_signal(signal.SIGINT)

    def on_signal(_signum: int, _frame: object) -> None:
        nonlocal outcome
        if outcome == "finished":
            outcome = "interrupted"
        ask_to_stop()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    exits = _Exits(procs.values())
    try:
        deadline_s = time.monotonic() + budget_s
        while running():
            now = time.monotonic()
            if stop_sent_s is None:
                if now >= deadline_s:
                    outcome = "timed_out"
                    ask_to_stop()
                elif any(p.poll() not in (None, 0) for p in procs.values()):
                    ask_to_stop()  # one failed (bad config, refused): the other stops too
            elif now >= stop_sent_s + grace_s:
                killed = tuple(name for name, p in procs.items() if p.poll() is None)
                for name in killed:
                    procs[name].kill()
                for name in killed:
                    procs[name].wait()
                return WaitResult(outcome, killed)
            if on_tick is not None:
                on_tick()
            exits.wait([p for p in procs.values() if p.poll() is None], poll_s)
    finally:
        exits.close()
        for s, h in old.items():
            signal.signal(s, h)
    return WaitResult(outcome)


class _Exits:
    """Sleeps that end as soon as one of the processes exits (each one's pidfd becomes
    readable), so a run's report follows its processes' end at once rather than at the next
    poll; a plain sleep where pidfds are missing."""

    def __init__(self, procs: Iterable[Child]) -> None:
        self._fds: dict[int, int] = {}
        for p in procs:
            with contextlib.suppress(OSError, AttributeError):
                self._fds[p.pid] = os.pidfd_open(p.pid)

    def wait(self, running: list[Child], timeout_s: float) -> None:
        fds = [self._fds[p.pid] for p in running if p.pid in self._fds]
        if len(fds) < len(running):
            time.sleep(timeout_s)
        elif fds:
            select.select(fds, (), (), timeout_s)

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
