"""`hil-controller`: run a control law against a plant over ZeroMQ; write controller.json."""

from __future__ import annotations

# isort: off
# First of all: a stop signal during the heavy imports below is kept, not lost.
from hil.app import early_signals

early_signals.catch_if_started_as("hil-controller", "controller_client/main.py")
# isort: on

import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from controller_client.answer import LawError, sensed_columns
from controller_client.controllers import (
    GainError,
    PluginError,
    UnknownControllerError,
    create_controller,
)
from controller_client.law import needs_target, takes_target
from controller_client.loop import ControllerLoop, Ending, LoopSettings
from controller_client.output import LawOutputError, law_output
from controller_client.ports import Log
from controller_client.session import HandshakeRefused, PlantUnreachable
from hil.app.exits import leave
from hil.app.process import (
    EXIT_FAULT,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    ProcessContext,
    ResourceMeter,
    run_process,
)
from hil.config import (
    Config,
    ConfigError,
    ExperimentConfig,
    build_plant_model,
    plant_timeout_ms,
)
from hil.dynamics.inputs import Inputs
from hil.experiment.plan import check_experiment, reference_table
from hil.experiment.sensors import Sensors
from hil.experiment.signals import SignalTable
from hil.link import atomics
from hil.link.security import CurveKeyError
from hil.link.transport import ControllerSocket
from hil.recording.recorder import Recorder, controller_columns
from hil.runtime import rt
from hil.runtime.stability import StabilityMonitor


def law_from_config(config: Config, model: Any = None) -> Any:
    """A fresh control law as `config` names it, for the plant model `model` (built from
    `plant` when None); ConfigError naming the key otherwise."""
    controller_config = config.controller
    if model is None:
        model = build_plant_model(config)
    # The laws integrate with a fixed period: the run's, unless the options say otherwise.
    options = {"dt_s": 1.0 / config.run.rate_hz, **controller_config.options}
    context = {"dt_s": options.pop("dt_s"), "max_force_n": options.pop(
        "max_force_n", model.max_force_n), "plant": model.describe(), "model": model,
        "options": options}
    try:
        return create_controller(controller_config.name, controller_config.gains,
                                 search_path=config.search_path, **context)
    except UnknownControllerError as exc:
        raise ConfigError(f"controller.name: {exc}") from None
    except PluginError as exc:
        raise ConfigError(str(exc)) from None
    except GainError as exc:
        raise ConfigError(f"controller.gains: {exc}") from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"controller.options: {exc}") from None
    except Exception as exc:  # a law is user code (or a solver that fails on these gains)
        raise ConfigError(_refusal(controller_config.name, controller_config.gains, exc)) \
            from None


def _refusal(name: str, gains: Any, exc: Exception) -> str:
    """A law that raised while being built: on the config's gains when it names some."""
    what = f"{type(exc).__name__}: {exc}"
    if gains is not None:
        return f"controller.gains: {name} refused the gains {list(gains)}: {what}"
    return f"controller.name: {name} could not be built with its default gains: {what}"


def law_timing(law: Any, report: dict[str, Any], settings: LoopSettings, period_ns: int,
               log: Log) -> dict[str, Any]:
    """The law's compute time against its budget (the part of a period between the
    controller's wake-up and the guard before the plant's next tick), and by how much a slow
    law overran it."""
    budget_us = (1.0 - settings.phase_offset - settings.guard) * period_ns / 1e3
    compute = (report.get("latency_us") or {}).get("compute") or {}
    p99 = compute.get("p99")
    name = getattr(law, "name", type(law).__name__)
    too_slow = p99 is not None and p99 > budget_us
    timing: dict[str, Any] = {"law": name, "budget_us": round(budget_us, 1),
                              "compute_p99_us": p99, "overruns": report.get("overruns"),
                              "too_slow": too_slow}
    if p99 is not None and too_slow:
        timing["over_by_us"] = round(p99 - budget_us, 1)
        # From the figures the report carries, so the two never differ by a rounding.
        timing["message"] = (f"control law {name} is too slow: compute p99 {p99:.0f} us > "
                             f"budget {timing['budget_us']:.0f} us by "
                             f"{timing['over_by_us']:.0f} us ({report.get('overruns')} overruns)")
        log.warning(timing["message"])
        print(f"hil-controller: {timing['message']}", file=sys.stderr)
    return timing


def input_bounds(description: dict[str, Any]) -> list[tuple[float, float]]:
    """Per input (low, high), from a plant description."""
    inputs = Inputs.from_description(description)
    return list(zip(inputs.low, inputs.high, strict=True))


def _build_loop(ctx: ProcessContext, law: Any, bounds: list[tuple[float, float]],
                sock: ControllerSocket, settings: LoopSettings,
                resources: ResourceMeter, model: Any) -> tuple[ControllerLoop, StabilityMonitor]:
    """The fixed-rate loop on `sock`, its stability monitor, and its recorder (opened at
    attach)."""
    config = ctx.config
    controller_config = config.controller
    rate_hz = config.run.rate_hz
    stability = StabilityMonitor(bounds, config.gates.slew_limit_n_per_s / rate_hz,
                                 window=max(1, round(rate_hz)), sigma_floor=law.sigma_floor)

    target, sensors = experiment_parts(config.experiment, law, model, ctx.log,
                                       config.source_dir)

    def open_recorder(description: dict[str, Any]) -> Recorder:
        names, units = description["state_names"], description["state_units"]
        columns = controller_columns(names, units, Inputs.from_description(description))
        if sensors is not None:  # what the law saw, beside the true state
            columns += sensed_columns(names, units)
        return Recorder.from_config(ctx.out_dir / "controller.rec", columns, config.record, {
            "run_id": ctx.run_id, "process": "controller", "controller": controller_config.name,
            "t0_ns": description.get("t0_ns"), "mode": description.get("mode"),
            "period_ns": description.get("period_ns"), "sigma_floor": law.sigma_floor})

    loop = ControllerLoop(law, sock, settings, ctx.log, stop_requested=ctx.stop,
                          stability=stability,
                          open_recorder=open_recorder if config.record.enabled else None,
                          on_attach=resources.attached, target=target, sensors=sensors)
    return loop, stability


def experiment_parts(experiment: ExperimentConfig | None, law: Any, model: Any,
                     log: Log | None = None, base_dir: str | None = None
                     ) -> tuple[SignalTable | None, Sensors | None]:
    """The run's target for a law that takes one, when the experiment has references or the
    law cannot do without (then the equilibrium); the experiment's sensors (None when they
    change nothing). A run without an experiment calls the built-in laws as it always did."""
    referenced = experiment is not None and bool(experiment.reference)
    wanted = takes_target(law) if referenced else needs_target(law)
    target = reference_table(experiment, model.state_names, model.equilibrium, base_dir) \
        if wanted else None
    if target is None and referenced and log is not None:
        log.warning("the law takes no target (compute(state, t)): it regulates to its own "
                        "set point; the reference is scored, not followed",
                        law=getattr(law, "name", type(law).__name__))
    sensors = Sensors(experiment.sensors, model.state_names) if experiment is not None \
        else None
    return target, sensors if sensors is not None and sensors.active else None


def loop_settings(config: Config) -> LoopSettings:
    controller_config = config.controller
    return LoopSettings(
        phase_offset=controller_config.phase_offset,
        spin_ns=round(controller_config.spin_us * 1e3),
        connect_timeout_ns=round(controller_config.connect_timeout_s * 1e9),
        plant_timeout_ns=round(plant_timeout_ms(config) * 1e6),
        clear_on_attach=controller_config.clear_on_attach,
        lockstep_spin_ns=round(config.run.lockstep_spin_us * 1e3),
        transport=config.run.transport,
    )


def _open_socket(config: Config) -> ControllerSocket:
    try:
        return ControllerSocket(config.controller.endpoint, curve_keys_dir=config.security.keys_dir
                                if config.security.curve else None)
    except CurveKeyError as exc:
        raise ConfigError(f"security.keys_dir: {exc}") from None


@dataclass
class _Outcome:
    """How the run ended for the exit status and the report."""

    code: int = EXIT_OK
    law_error: dict[str, Any] | None = None


def _run(loop: ControllerLoop, ctx: ProcessContext) -> _Outcome:
    """Run the loop; every way it can end is an exit status (docs in hil/app/process.py)."""
    endpoint = ctx.config.controller.endpoint
    try:
        with rt.gc_quiet():
            loop.run()
    except PlantUnreachable as exc:
        loop.end_reason = str(exc)
        print(f"hil-controller: {exc}", file=sys.stderr)
        return _Outcome(EXIT_UNREACHABLE)
    except LawError as exc:
        return _law_failed(loop, exc, ctx)
    except HandshakeRefused as exc:
        who = "refused by the plant" if exc.by == "plant" else "refused the plant"
        loop.end_reason = f"{who}: {exc}"
        print(f"hil-controller: {who} at {endpoint}: {exc}", file=sys.stderr)
        return _Outcome(EXIT_REFUSED)
    except Exception as exc:  # the report is written whatever ended the loop
        loop.end_reason = f"error: {type(exc).__name__}: {exc}"
        ctx.log.exception("controller loop failed", error=str(exc))
        print(f"hil-controller: {loop.end_reason}", file=sys.stderr)
        return _Outcome(EXIT_FAULT)
    if loop.ending in (Ending.PLANT_SILENT, Ending.REPLACED):
        print(f"hil-controller: {loop.end_reason}", file=sys.stderr)
        return _Outcome(EXIT_UNREACHABLE if loop.ending is Ending.PLANT_SILENT
                        else EXIT_REFUSED)
    if loop.ending is Ending.STOPPED and ctx.stop.signal is None:
        return _Outcome(EXIT_FAULT)
    return _Outcome(EXIT_OK)


def _law_failed(loop: ControllerLoop, exc: LawError, ctx: ProcessContext) -> _Outcome:
    """The plant goes safe on the bye sent at cleanup; the traceback goes to the log and
    report."""
    loop.end_reason = str(exc)
    law_error = {"law": exc.law, "error": str(exc.__cause__),
                 "traceback": "".join(traceback.format_exception(exc.__cause__))}
    ctx.log.error("control law raised: run ended, plant sent to its safe state",
                  law=exc.law, traceback=law_error["traceback"])
    print(f"hil-controller: {exc}; the plant was told to go safe\n"
          f"{law_error['traceback']}", file=sys.stderr)
    return _Outcome(EXIT_FAULT, law_error)


def _close(loop: ControllerLoop, sock: ControllerSocket, log: Log
           ) -> tuple[dict[str, Any] | None, list[str]]:
    """(the recording's summary, the steps that failed): each step runs whatever the one
    before it raised."""
    failed: list[str] = []

    def step(name: str, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except Exception as exc:
            log.error("cleanup step failed", step=name, error=f"{type(exc).__name__}: {exc}")
            failed.append(f"{name}: {type(exc).__name__}: {exc}")
            return None

    step("bye", loop.send_bye)
    step("data plane close", loop.data.close)
    step("socket close", sock.close)
    recorder = loop.recorder
    stats = step("recorder close", recorder.close) if recorder is not None else None
    return (stats.to_dict() if stats is not None else None), failed


def _warm(law: Any, config: Config, n_inputs: int) -> None:
    """Compile and warm the law (and the shared-memory doorbell) before the handshake starts
    the plant's clock. A law that raises on the configured initial state, or returns other
    than one number per plant input, cannot run: the config names it, exit 2."""
    warm = np.array(config.plant.initial_state, dtype=np.float64)
    target = (warm.copy(),) if takes_target(law) else ()
    try:
        for _ in range(3):  # both ways the loop may call it: with and without a target
            out = law.compute(warm, 0.0, *target)
            if target and not needs_target(law):
                out = law.compute(warm, 0.0)
        law.reset()
    except Exception as exc:  # a law is user code
        raise ConfigError(
            f"controller.name: {config.controller.name} raised {type(exc).__name__} on "
            f"plant.initial_state {warm.tolist()} during its warm-up: {exc}") from None
    try:
        law_output(config.controller.name, out, n_inputs)
    except LawOutputError as exc:
        raise ConfigError(f"controller.name: at plant.initial_state: {exc}") from None
    if config.run.transport == "shm":
        atomics.warm()


def _control(ctx: ProcessContext) -> tuple[int, dict[str, Any]]:
    config = ctx.config
    resources = ResourceMeter()
    model = build_plant_model(config)
    check_experiment(config.experiment, model.name, model.state_names, model.inputs.names,
                     config.source_dir)
    law = law_from_config(config, model)
    bounds = input_bounds(model.describe())
    _warm(law, config, len(bounds))
    settings = loop_settings(config)
    rtc = config.realtime
    # Scheduling first, so ZeroMQ's I/O thread and the recorder's thread inherit it.
    # Lockstep has no deadlines: at SCHED_FIFO its flat-out loop would starve the machine.
    fifo = rtc.sched_fifo and config.run.mode == "realtime"
    granted = rt.apply_realtime(None, fifo, rtc.sched_priority, rtc.lock_memory, ctx.log)
    sock = _open_socket(config)
    try:  # the socket is closed if anything before the loop's own try fails
        loop, stability = _build_loop(ctx, law, bounds, sock, settings, resources, model)
        rt.apply_realtime(rtc.controller_cpu, False, rtc.sched_priority, False, ctx.log,
                          granted)
    except BaseException:
        rt.leave_realtime()
        sock.close()
        raise
    cpu = rt.CpuMeter()
    try:
        outcome = _run(loop, ctx)
    finally:
        usage = cpu.read()
        rt.leave_realtime()  # reports and exit at normal priority: they stall no other loop
        recording, cleanup_failed = _close(loop, sock, ctx.log)
    report = loop.report()
    report["realtime"] = {"granted": granted.granted, "refused": granted.refused}
    report["cpu"] = {"wall_s": usage.wall_s, "cpu_s": usage.cpu_s, "ratio": usage.ratio}
    report["resources"] = resources.report()
    report["endpoint"] = config.controller.endpoint
    report["law"] = law.describe()
    if outcome.law_error is not None:
        report["law_error"] = outcome.law_error
    report["law_timing"] = law_timing(law, report, settings, config.period_ns, ctx.log)
    report["stability"] = stability.summary()
    if recording is not None:
        report["recording"] = recording
    if cleanup_failed:
        report["cleanup_failed"] = cleanup_failed
    ctx.log.info("controller done", end_reason=loop.end_reason, controls=loop.controls_sent,
                 overruns=loop.overruns, dropped=loop.states_dropped)
    return outcome.code, report


def main(argv: list[str] | None = None) -> int:
    return run_process("controller", argv, "controller.endpoint", _control)


def entry() -> None:
    """The `hil-controller` program: main(), then leave without the final collections."""
    leave(main())


if __name__ == "__main__":
    entry()
