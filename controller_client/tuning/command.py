"""The `hil tune` process (`python -m controller_client.tuning`, started by `hil tune`).

Checks every input before any work (exit 2 with the reason and the fix), optimises with
nevergrad in batches on this machine's threads or on a Dask cluster, shows a progress bar on
a terminal, writes DIR/tuning.json, DIR/tuned.yaml and DIR/tuning.html, and adds a row to
the run history. Ctrl-C stops after the current batch and writes everything so far (exit
130); `hil tune --resume DIR` continues to the answer an uninterrupted run gives. The exit
statuses are listed in hil/cli/tune.py.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import time
from pathlib import Path
from typing import Any

from hil.app import run_folder
from hil.app.exits import EXIT_FAULT, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE
from hil.cli.tune import CONNECT_TIMEOUT_S, add_arguments

EXIT_INTERRUPTED = 130
ZERO_GAIN_BOX = 0.1  # a zero default gain is searched in [-0.1, 0.1]
# Options that decide the answer: on --resume they come from tuning.json.
_SAVED = ("controller", "budget", "draws", "uncertainty", "seed", "optimizer")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hil tune", description=__doc__.splitlines()[0])
    add_arguments(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code else EXIT_OK
    return tune_command(args)


class _Usage(Exception):
    """Bad input: the message says what and how to fix it."""


class _Progress:
    """One self-rewriting line on a terminal (evaluations, best cost, ETA); silent elsewhere."""

    def __init__(self, budget: int, done: int, stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.active = bool(getattr(self.stream, "isatty", lambda: False)())
        self.budget, self.start_done, self.t0 = budget, done, time.monotonic()

    def update(self, done: int, best: float) -> None:
        if not self.active:
            return
        rate = (done - self.start_done) / max(time.monotonic() - self.t0, 1e-9)
        eta = (self.budget - done) / rate if rate > 0 else math.inf
        width = 30
        filled = round(width * done / self.budget)
        bar = "#" * filled + "." * (width - filled)
        eta_text = f"{eta:5.0f} s" if math.isfinite(eta) else "    ?"
        self.stream.write(f"\r[{bar}] {done}/{self.budget} evaluations  best {best:.5g}  "
                          f"ETA {eta_text} ")
        self.stream.flush()

    def close(self) -> None:
        if self.active:
            self.stream.write("\n")
            self.stream.flush()


def _settings_from_args(args: argparse.Namespace) -> tuple[Any, dict[str, Any], str | None]:
    """(Settings, base config dict, history db) for a new tuning; raises _Usage."""
    from controller_client.tuning.problem import Settings, TuningError, check_settings

    config = _tuning_config(args)
    name = args.controller or config.controller.name
    options = dict(config.controller.options) if name == config.controller.name else {}
    search_path = tuple(getattr(config, "search_path", ()))
    dt_s = 1.0 / config.run.rate_hz
    plant = _plant(config, search_path)
    law = _law_to_tune(name, options, dt_s, search_path, plant)
    lower, upper = _search_box(law, {**config.tuning.bounds, **_bounds_option(args.bounds)})
    _check_box(name, (lower, upper), options, dt_s, search_path, plant)
    mode = config.run.mode
    t = config.tuning
    settings = Settings(
        controller=name, options=options, lower=lower, upper=upper,
        budget=200 if args.budget is None else args.budget,
        draws=8 if args.draws is None else args.draws,
        uncertainty=0.05 if args.uncertainty is None else args.uncertainty,
        seed=0 if args.seed is None else args.seed,
        optimizer=args.optimizer or "pso",
        batch_size=t.batch_size, duration_s=_duration_s(config), rate_hz=config.run.rate_hz,
        delay=1.0 if mode == "realtime" else 0.0, substeps=config.plant.substeps,
        starts=_starts(config, plant), plant_params=dict(config.plant.params),
        angle_limit_rad=getattr(config.safety.angle_limit_rad, mode),
        track_limit_m=config.safety.track_limit_m, mean_weight=t.mean_weight,
        search_path=search_path, plant_model=config.plant.model,
        sanity_factor=config.safety.sanity_force_factor, plant_fmu=plant[4],
        plant_fmu_outputs=plant[5], experiment=_experiment(config, plant),
        experiment_dir=config.source_dir, cost=dict(t.cost))
    try:
        check_settings(settings)
        _check_cost(settings)
    except TuningError as exc:
        raise _Usage(str(exc)) from None
    return settings, config.model_dump(mode="json"), config.record.history_db


def _duration_s(config: Any) -> float:
    """tuning.duration_s; with an experiment and no tuning.duration_s, the run's duration
    (the experiment's metrics are the run's, measured over the same time)."""
    t = config.tuning
    if config.experiment is not None and "duration_s" not in t.model_fields_set:
        return float(config.run.duration_s)
    return float(t.duration_s)


def _experiment(config: Any, plant: Any) -> dict[str, Any] | None:
    """The config's experiment section (JSON), its names checked against the plant as
    `hil run` checks them; _Usage naming a bad one."""
    from controller_client.tuning.plants import plant_model
    from hil.config import ConfigError
    from hil.experiment.plan import check_experiment

    experiment = getattr(config, "experiment", None)
    if experiment is None:
        return None
    model = plant_model(plant)
    try:
        check_experiment(experiment, config.plant.model, model.state_names,
                         model.inputs.names, config.source_dir)
    except ConfigError as exc:
        raise _Usage(str(exc)) from None
    for i, d in enumerate(experiment.disturbances):
        if getattr(d, "parameter", None) is not None:
            print(f"hil tune: experiment.disturbances[{i}] (a change of parameter "
                  f"{d.parameter} at {d.at_s:g} s) is not simulated by the tuning: its draws "
                  f"keep their parameters over the run (docs/tuning.md)", file=sys.stderr)
    return dict(experiment.model_dump(mode="json"))


def _check_cost(settings: Any) -> None:
    """TuningError unless tuning.cost names metrics the experiment gives."""
    from controller_client.tuning.experiment import CostError, check_cost, experiment_spec
    from controller_client.tuning.plants import plant_model
    from controller_client.tuning.problem import TuningError

    s = settings
    spec = None if s.experiment is None else experiment_spec(
        s.experiment, plant_model(s.plant()), s.rate_hz, s.experiment_dir)
    try:
        check_cost(s.cost, spec)
    except CostError as exc:
        raise TuningError(str(exc)) from None


def _tuning_config(args: argparse.Namespace) -> Any:
    """The run config (--config); _Usage naming what is wrong."""
    from hil.config import ConfigError, load_config

    try:
        return load_config(args.config)
    except ConfigError as exc:
        raise _Usage(str(exc)) from None


def _plant(config: Any, search_path: tuple[str, ...]) -> Any:
    """The plant spec of the config, its model built and checked as `hil run` does (a
    built-in, a lab's own "module:Class"); _Usage naming the problem."""
    from controller_client.tuning.plants import plant_model, plant_spec
    from hil.config import ConfigError, build_plant_model, fmu_path

    try:
        build_plant_model(config)
    except ConfigError as exc:
        raise _Usage(str(exc)) from None
    spec = plant_spec(config.plant.model, dict(config.plant.params), config.plant.substeps,
                      search_path, fmu_path(config), config.plant.fmu_outputs)
    plant_model(spec)
    return spec


def _bounds_option(given: list[str] | None) -> dict[str, list[float]]:
    """--bounds GAIN=LOW,HIGH (repeated) as {gain: [low, high]}; _Usage naming a bad one."""
    bounds: dict[str, list[float]] = {}
    for text in given or ():
        name, _, pair = text.partition("=")
        try:
            low, high = (float(v) for v in pair.split(","))
        except ValueError:
            raise _Usage(f"--bounds {text!r}: give GAIN=LOW,HIGH, e.g. --bounds k1=0.5,4") \
                from None
        bounds[name.strip()] = [low, high]
    return bounds


def _law_to_tune(name: str, options: dict[str, Any], dt_s: float,
                 search_path: tuple[str, ...], plant: Any) -> Any:
    """The law `name` with its default gains; _Usage naming the problem."""
    from controller_client.controllers import GainError, UnknownControllerError
    from controller_client.tuning.engine import build_law

    try:
        return build_law(name, None, options, dt_s, search_path, plant)
    except UnknownControllerError as exc:
        raise _Usage(f"{exc}; pass one of them to --controller") from None
    except (GainError, ValueError, TypeError) as exc:
        raise _Usage(f"{name}: {exc}; check --controller and controller.options") from None


def _check_box(name: str, box: tuple[tuple[float, ...], tuple[float, ...]],
               options: dict[str, Any], dt_s: float, search_path: tuple[str, ...],
               plant: Any) -> None:
    """_Usage unless the law accepts both corners of the search box."""
    from controller_client.controllers import GainError
    from controller_client.tuning.engine import build_law

    for side, gains in zip(("lower", "upper"), box, strict=True):
        try:
            build_law(name, gains, options, dt_s, search_path, plant)
        except (GainError, ValueError) as exc:
            raise _Usage(f"the {side} bounds {list(gains)} are refused by {name}: {exc}; set "
                         f"tuning.bounds in the config to gains it accepts") from None


def sign_keeping_box(gain: float) -> tuple[float, float]:
    """The default search range of a gain: half to twice it, on its own side of 0 (a
    negative gain's box is [2 g, 0.5 g]); a small box around 0 for a zero gain."""
    if gain > 0:
        return 0.5 * gain, 2.0 * gain
    if gain < 0:
        return 2.0 * gain, 0.5 * gain
    return -ZERO_GAIN_BOX, ZERO_GAIN_BOX


def _search_box(law: Any, overrides: dict[str, Any] | None
                ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(lower, upper): the law's own `tuning_bounds`, else each default gain's
    `sign_keeping_box`, with the config's tuning.bounds on top; _Usage naming a bad one."""
    from controller_client.tuning.problem import TuningError, law_bounds

    box: dict[str, Any] = {}
    if getattr(law, "tuning_bounds", None) is None:
        box = {name: sign_keeping_box(float(g))
               for name, g in zip(law.gain_names, law.default_gains, strict=True)}
    try:
        return law_bounds(law, {**box, **(overrides or {})})
    except TuningError as exc:
        raise _Usage(str(exc)) from None


def _starts(config: Any, plant: Any) -> tuple[tuple[float, ...], ...]:
    """The initial states each candidate is simulated from: tuning.starts, else the plant's
    initial state; _Usage unless each is one finite number per state of the plant."""
    from controller_client.tuning.plants import plant_model

    names = list(plant_model(plant).state_names)
    starts = config.tuning.starts if config.tuning.starts is not None \
        else [config.plant.initial_state]
    for start in starts:
        if len(start) != len(names) or not all(math.isfinite(v) for v in start):
            raise _Usage(f"each start (tuning.starts, else plant.initial_state) must be "
                         f"{len(names)} finite numbers, one per state {names}, got {start}")
    return tuple(tuple(float(v) for v in s) for s in starts)


def _resumed(args: argparse.Namespace, out_dir: Path) -> tuple[Any, dict[str, Any], list[Any]]:
    from controller_client.tuning.outputs import history_of, load_record
    from controller_client.tuning.problem import Settings

    try:
        record = load_record(out_dir)
    except ValueError as exc:
        raise _Usage(str(exc)) from None
    settings = Settings.from_dict(record["settings"])
    for key in _SAVED:
        given = getattr(args, key)
        if given is not None and given != getattr(settings, key):
            raise _Usage(f"--{key} {given} differs from the tuning in {out_dir} "
                         f"({getattr(settings, key)}); a resumed tuning keeps its settings: "
                         f"drop --{key}, or start a new tuning with another --out")
    if args.config is not None or args.bounds:
        flag = "--config" if args.config is not None else "--bounds"
        raise _Usage(f"{flag}: a resumed tuning keeps the config and box saved in {out_dir}; "
                     f"drop it")
    return settings, record, history_of(record)


def connect_timeout(args: argparse.Namespace) -> float:
    """Seconds to wait for the Dask scheduler: --connect-timeout, else CONNECT_TIMEOUT_S."""
    timeout = CONNECT_TIMEOUT_S if args.connect_timeout is None else args.connect_timeout
    if not (math.isfinite(timeout) and timeout > 0.0):
        raise _Usage(f"--connect-timeout must be a number of seconds > 0, got {timeout}")
    return float(timeout)


def _evaluator(args: argparse.Namespace, settings: Any) -> Any:
    from controller_client.tuning.engine import LocalEvaluator

    plant = settings.plant()
    workers = 1 if args.workers is None else args.workers
    if workers < 1:
        raise _Usage(f"--workers must be >= 1, got {workers}")
    if args.scheduler or args.local_cluster:
        from controller_client.tuning.remote import DaskEvaluator

        return DaskEvaluator(settings.controller, dict(settings.options),
                             scheduler=args.scheduler, workers=workers,
                             search_path=settings.search_path, plant=plant,
                             connect_timeout_s=connect_timeout(args))
    return LocalEvaluator(settings.controller, dict(settings.options), workers,
                          settings.search_path, plant)


def python_estimate(problem: Any, processes: int) -> str:
    """What a tuning simulated in Python will cost, from one evaluation timed here: the
    steps per second of one process and the time of the whole budget on `processes`."""
    import dataclasses

    from controller_client.tuning.batch import M_STEPS, law_kernels, law_target, run_batch

    sc, s = problem.train, problem.settings
    one = dataclasses.replace(sc, draws=sc.draws[:1], plant_params=sc.plant_params[:1],
                              starts=sc.starts[:1])
    warm = dataclasses.replace(one, steps=min(one.steps, 10))
    run_batch(problem.make_law, [problem.default_gains], warm)  # loads what numba cached
    t0 = time.perf_counter()
    steps_run = run_batch(problem.make_law, [problem.default_gains], one)[0, 0, 0, M_STEPS]
    rate = max(steps_run, 1.0) / max(time.perf_counter() - t0, 1e-9)
    evaluations = s.budget + 4  # and the defaults and the best on both draw streams
    total = evaluations * s.draws * sc.starts.shape[0] * sc.steps
    seconds = total / rate / max(processes, 1)
    law = problem.make_law(None)
    mode = law_target(law, sc.experiment, sc.facts.n_states)[0]
    why = (f"{s.controller} has no compiled form" if law_kernels(law, mode) is None
           else f"the plant {s.plant_model} has no derivatives_kernel" if ":" in s.plant_model
           else f"the plant {s.plant_model} is stepped through its Python model.step")
    return (f"{why}: simulated in Python at {rate:,.0f} steps/s per process (measured on one "
            f"evaluation here); {evaluations} evaluations x {s.draws} draws x "
            f"{sc.starts.shape[0]} start(s) x up to {sc.steps} steps = {total:,} steps: about "
            f"{_duration(seconds)} of simulation on {processes} process(es) (plus starting "
            f"them, and the report), less if candidates trip the gates early (--workers N "
            f"spreads it over N processes, --scheduler over a cluster)")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def tune_command(args: argparse.Namespace) -> int:
    try:
        return _tune(args)
    except _Usage as exc:
        print(f"hil tune: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _tune(args: argparse.Namespace) -> int:
    from hil.app.process import new_run_id

    if args.scheduler and args.local_cluster:
        raise _Usage("--scheduler and --local-cluster exclude each other: choose one")
    if args.workers is not None and args.workers < 1:
        raise _Usage(f"--workers must be >= 1, got {args.workers}")
    connect_timeout(args)
    db: str | None
    if args.resume:
        out_dir = Path(args.resume)
        settings, record, history = _resumed(args, out_dir)
        base_config, run_id = record["base_config"], record["run_id"]
        db = args.db or (base_config.get("record") or {}).get("history_db")
        if record["complete"]:
            print(f"hil tune: the tuning in {out_dir} is complete "
                  f"({record['evaluations']} evaluations); nothing to resume")
            return EXIT_OK
    else:
        settings, base_config, db = _settings_from_args(args)
        db = args.db or db
        run_id = new_run_id()
        out_dir = Path(args.out) if args.out else Path("runs") / f"tune-{run_id}"
        if (out_dir / "tuning.json").exists():
            raise _Usage(f"{out_dir} holds another tuning (tuning.json); continue it with "
                         f"--resume {out_dir}, or choose another --out")
        history = []
    try:
        evaluator = _evaluator(args, settings)
    except ConnectionError as exc:
        print(f"hil tune: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    try:
        return _optimise(settings, evaluator, history, out_dir, run_id, base_config, db)
    finally:
        evaluator.close()


def _optimise(settings: Any, evaluator: Any, history: list[Any], out_dir: Path, run_id: str,
              base_config: dict[str, Any], db: str | None) -> int:
    from controller_client.tuning.engine import Problem, ReplayMismatch, best_of, optimise
    from controller_client.tuning.outputs import checkpoint, summarise, write_checkpoint

    problem = Problem(settings, evaluator)
    if not problem.compiled:
        print(f"hil tune: {python_estimate(problem, evaluator.workers)}", file=sys.stderr,
              flush=True)
    try:  # once the tuning is known good, before its first evaluation
        run_folder.make(str(out_dir), "--out")
    except run_folder.RunFolderError as exc:  # empty, a file, under one, /proc, read-only
        raise _Usage(str(exc)) from None
    stop = {"requested": False}

    def request_stop(signum: int, frame: Any) -> None:
        stop["requested"] = True

    previous = signal.signal(signal.SIGINT, request_stop)
    done = sum(len(b.costs) for b in history)
    progress = _Progress(settings.budget, done)
    t0 = time.monotonic()

    def record(batches: list[Any], complete: bool) -> dict[str, Any]:
        return summarise(problem, batches, run_id=run_id, complete=complete,
                         workers=evaluator.workers, elapsed_s=time.monotonic() - t0,
                         base_config=base_config)

    def after_batch(batches: list[Any]) -> None:
        write_checkpoint(out_dir, checkpoint(settings, batches, run_id=run_id,
                                             base_config=base_config))
        progress.update(sum(len(b.costs) for b in batches), best_of(batches)[1])

    try:
        optimise(problem, history, on_batch=after_batch, should_stop=lambda: stop["requested"])
    except ReplayMismatch as exc:
        print(f"hil tune: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        progress.close()
        signal.signal(signal.SIGINT, previous)
    evaluations = sum(len(b.costs) for b in history)
    complete = evaluations >= settings.budget
    return _tell(settings, problem, record(history, complete), out_dir, db, evaluations)


def _tell(settings: Any, problem: Any, summary: dict[str, Any], out_dir: Path, db: str | None,
          evaluations: int) -> int:
    """Write the outputs and the history row, print the outcome; the exit status."""
    from controller_client.tuning.outputs import write_outputs

    write_outputs(out_dir, summary, problem)
    if db:
        from hil.reporting.history import HistoryError, append_tuning

        try:
            append_tuning(db, summary, out_dir)
        except (HistoryError, ValueError) as exc:
            print(f"hil tune: run history not updated: {exc}", file=sys.stderr)
    held = summary["held_out"]
    print(f"{settings.controller}: best cost {summary['best_cost']:.5g} (defaults "
          f"{summary['baseline_cost']:.5g}) after {evaluations} evaluations; held out: tuned "
          f"{held['tuned_cost']:.5g}, defaults {held['baseline_cost']:.5g}\n"
          f"{held['verdict']}\nwrote {out_dir}/tuning.json, tuned.yaml, tuning.html")
    if evaluations < settings.budget:
        print(f"interrupted after {evaluations} of {settings.budget} evaluations; continue "
              f"with: hil tune --resume {out_dir}", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_OK if held["tuned_better"] else EXIT_FAULT
