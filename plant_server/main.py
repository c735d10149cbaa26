"""`hil-plant`: serve a plant over ZeroMQ until the run ends; write plant.json on any exit."""

from __future__ import annotations

# isort: off
# First of all: a stop signal during the heavy imports below is kept, not lost.
from hil.app import early_signals

early_signals.catch_if_started_as("hil-plant", "plant_server/main.py")
# isort: on

import sys
import traceback
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np

from hil.app.exits import leave
from hil.app.process import (
    EXIT_FAULT,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    ProcessContext,
    ResourceMeter,
    run_process,
)
from hil.config import Config, ConfigError, build_plant_model, serial_link_problem
from hil.dynamics.inputs import Inputs
from hil.experiment.actuator import Actuator
from hil.experiment.parameters import ParameterSchedule, ParameterSink
from hil.experiment.plan import check_experiment, disturbance_table
from hil.link.dataplane import plant_data
from hil.link.dataplane import spin_ns as shm_spin_ns
from hil.link.security import CurveKeyError
from hil.link.shm import SharedMemoryError
from hil.link.transport import PlantSocket
from hil.recording.appended import ExperimentSink, experiment_columns
from hil.recording.recorder import Column, Recorder, plant_columns
from hil.runtime import rt
from hil.runtime.deadline_gates import DeadlineGateSettings
from plant_server.backends import SimBackend
from plant_server.backends.serial import RigUnreachable, SerialBackend
from plant_server.faults import FaultInjector
from plant_server.faults import settings_from_config as fault_settings
from plant_server.loops import run as run_plant
from plant_server.safety import limits_from_config
from plant_server.server import PlantServer, PlantSettings


def build_model(ctx: ProcessContext) -> Any:
    """The model `plant.model` names (built in, an entry point or "module:Class" found first
    beside the config file), checked at `plant.initial_state`; ConfigError saying why not."""
    return build_plant_model(ctx.config)


def _deadline_gates(config: Config) -> DeadlineGateSettings:
    deadline_config = config.safety.deadline
    return DeadlineGateSettings(
        window=max(1, round(deadline_config.window_ms * 1e-3 * config.run.rate_hz)),
        max_miss_ratio=deadline_config.max_miss_ratio,
        miss_ratio_policy=deadline_config.miss_ratio_policy,
        max_consecutive=deadline_config.max_consecutive_misses,
        consecutive_policy=deadline_config.consecutive_policy)


def _faults(config: Config, n_states: int) -> FaultInjector:
    settings = fault_settings(config.faults)
    if settings.timing_faults and config.run.mode != "realtime":
        raise ConfigError("faults: latency, jitter and drop_rate need run.mode realtime (a "
                          "lockstep plant waits for each answer; only sensor_noise_std "
                          "applies; an input delay in lockstep is "
                          "experiment.actuator.delay_steps)")
    try:
        return FaultInjector(settings, n_states)
    except ValueError as exc:
        raise ConfigError(f"faults.{exc}") from None


def _backend(ctx: ProcessContext, model: Any, period_ns: int) -> Any:
    """The plant `plant.backend` names: the simulation, or the rig on `serial.port`."""
    config = ctx.config
    experiment = config.experiment
    disturbance = disturbance_table(experiment, model.inputs.names)
    actuator = Actuator(experiment.actuator, model.inputs.names) if experiment else None
    if config.plant.backend != "serial":
        return SimBackend(model, np.array(config.plant.initial_state), period_ns, disturbance,
                          actuator if actuator is not None and actuator.active else None,
                          ParameterSchedule.build(experiment, model))
    if experiment is not None and (experiment.disturbances or (actuator is not None and
                                   actuator.active)):
        raise ConfigError("experiment.disturbances, experiment.actuator: a rig's inputs and "
                          "parameters cannot be disturbed or shaped by the runtime; they need "
                          "plant.backend sim")
    realtime_config = config.realtime
    backend = SerialBackend.from_config(
        config, model, ctx.log,
        # The reader thread timestamps the rig's frames: it runs like the loop's thread.
        on_reader_start=lambda: rt.apply_realtime(
            realtime_config.plant_cpu, realtime_config.sched_fifo,
            realtime_config.sched_priority, False, ctx.log))
    backend.open()
    return backend


def _settings(config: Config) -> PlantSettings:
    lockstep = config.run.mode == "lockstep"
    return PlantSettings(
        mode=config.run.mode,
        period_ns=config.period_ns,
        duration_s=config.run.duration_s,
        start_delay_ns=round(config.run.start_delay_ms * 1e6),
        lockstep_spin_ns=round(config.run.lockstep_spin_us * 1e3),
        watchdog_timeout_ns=round((config.plant.lockstep_watchdog_timeout_ms if lockstep
                                   else config.plant.watchdog_timeout_ms) * 1e6),
        attach_timeout_ns=round(config.plant.attach_timeout_s * 1e9),
        first_control_timeout_ns=round(config.plant.first_control_timeout_ms * 1e6),
        safety=None,  # set by _serve from the model's input limit
        deadline_gates=_deadline_gates(config),
    )


def _warm_model(ctx: ProcessContext) -> Any:
    """The model, checked against plant.initial_state and compiled before anything waits."""
    config = ctx.config
    model = build_model(ctx)
    n = len(model.state_names)
    if len(config.plant.initial_state) != n:
        raise ConfigError(
            f"plant.initial_state: model {model.name!r} has {n} states "
            f"{list(model.state_names)}, got {len(config.plant.initial_state)} values")
    check_experiment(config.experiment, model.name, model.state_names, model.inputs.names,
                     config.source_dir)
    warm = np.array(config.plant.initial_state, dtype=np.float64)
    model.step(warm, np.zeros(model.inputs.n), 1e-3, np.empty_like(warm))
    return model


class Cleanup:
    """Steps that release what the process opened, run in rank order (the rig's ESTOP
    first), each whatever the others raise (a data plane that fails to close never skips the
    rig's ESTOP); `errors` says which failed and how."""

    RANKS: ClassVar[dict[str, int]] = {"backend": 0, "recorder": 1, "data plane": 2, "socket": 3}

    def __init__(self) -> None:
        self._steps: list[tuple[str, Callable[[], object]]] = []
        self.errors: list[str] = []

    def add(self, name: str, step: Callable[[], object]) -> None:
        self._steps.append((name, step))

    def run(self, log: Any) -> None:
        steps, self._steps = sorted(self._steps, key=lambda s: self.RANKS[s[0]]), []
        for name, step in steps:
            try:
                step()
            except Exception as exc:  # each step runs; the failure is reported, not raised
                self.errors.append(f"{name}: {type(exc).__name__}: {exc}")
                log.error("cleanup step failed", step=name, error=str(exc))


def _open_link(ctx: ProcessContext, settings: PlantSettings, n: int, n_inputs: int,
               cleanup: Cleanup) -> tuple[PlantSocket, Any] | tuple[int, dict[str, Any]]:
    """The socket and the data plane, or (exit status, report) saying why not."""
    config = ctx.config
    keys = config.security.keys_dir if config.security.curve else None
    try:
        sock = PlantSocket(config.plant.endpoint, curve_keys_dir=keys)
    except CurveKeyError as exc:
        raise ConfigError(f"security.keys_dir: {exc}") from None
    except OSError as exc:
        ctx.log.error("cannot bind", endpoint=config.plant.endpoint, error=str(exc))
        print(f"hil-plant: {exc} (is another hil-plant running? choose another port with "
              f"--endpoint or plant.endpoint)", file=sys.stderr)
        return EXIT_USAGE, {"end_reason": f"cannot bind {config.plant.endpoint}"}
    cleanup.add("socket", sock.close)
    spin = shm_spin_ns(config.run.shm_spin_us, config.run.mode, settings.period_ns)
    if config.run.transport == "shm" and spin < round(config.run.shm_spin_us * 1e3):
        ctx.log.warning("run.shm_spin_us capped: a loop spinning more of each period reaches "
                        "the kernel's real-time throttling and stalls",
                        asked_us=config.run.shm_spin_us, spin_us=spin / 1e3,
                        period_us=settings.period_ns / 1e3)
    try:
        data = plant_data(config.run.transport, sock, n, n_inputs, spin)
    except SharedMemoryError as exc:
        print(f"hil-plant: run.transport shm: {exc}", file=sys.stderr)
        return EXIT_USAGE, {"end_reason": f"run.transport shm: {exc}"}
    cleanup.add("data plane", data.close)
    return sock, data


def _recorder(ctx: ProcessContext, backend: Any) -> Recorder | None:
    config = ctx.config
    if not config.record.enabled:
        return None
    desc = backend.describe()
    try:
        inputs = Inputs.from_description(desc)
        columns = plant_columns(desc["state_names"], desc["state_units"], inputs)
        columns += experiment_columns(inputs, getattr(backend, "actuator", None) is not None,
                                      getattr(backend, "disturbance", None) is not None)
        parameters = getattr(backend, "parameters", None)
        if parameters is not None:  # the values the plant had from each row's time on
            columns += [Column(f"param_{name}", "") for name in parameters.names]
    except ValueError as exc:  # an input named as a state or a fixed column
        raise ConfigError(f"plant.model: {exc}") from None
    return Recorder.from_config(ctx.out_dir / "plant.rec", columns, config.record, {
        "run_id": ctx.run_id, "process": "plant", "plant": desc, "mode": config.run.mode,
        "period_ns": config.period_ns})


def _sink(recorder: Recorder | None, backend: Any) -> Any:
    """What records each plant row: the recorder, with the experiment's columns appended."""
    actuator = getattr(backend, "actuator", None)
    disturbance = getattr(backend, "disturbance", None)
    parameters = getattr(backend, "parameters", None)
    if recorder is None or (actuator is None and disturbance is None and parameters is None):
        return recorder
    # Each appends its columns after the row it gets: the parameters last (as _recorder).
    sink: Any = recorder if parameters is None else ParameterSink(recorder, parameters)
    if actuator is not None or disturbance is not None:
        sink = ExperimentSink(sink, None if actuator is None else actuator.output,
                              disturbance)
    return sink


def _serve(ctx: ProcessContext) -> tuple[int, dict[str, Any]]:
    config = ctx.config
    resources = ResourceMeter()
    model = _warm_model(ctx)
    settings = _settings(config)
    inputs = model.inputs
    problem = serial_link_problem(config, inputs.n)
    if problem is not None:
        raise ConfigError(problem)
    settings.safety = limits_from_config(config.safety, config.run.mode, inputs)
    faults = _faults(config, len(model.state_names))
    realtime_config = config.realtime
    # Scheduling first, so ZeroMQ's I/O thread and our helper threads inherit it.
    # Lockstep has no deadlines: at SCHED_FIFO its flat-out loop would starve the machine.
    fifo = realtime_config.sched_fifo and config.run.mode == "realtime"
    granted = rt.apply_realtime(None, fifo, realtime_config.sched_priority,
                                realtime_config.lock_memory, ctx.log)
    cleanup = Cleanup()
    try:
        opened = _open_link(ctx, settings, len(model.state_names), inputs.n, cleanup)
        if isinstance(opened[0], int):
            return opened  # type: ignore[return-value]
        sock, data = opened
        try:
            backend = _backend(ctx, model, settings.period_ns)
        except RigUnreachable as exc:
            print(f"hil-plant: {exc}", file=sys.stderr)
            return EXIT_UNREACHABLE, {"end_reason": str(exc)}
        cleanup.add("backend", backend.close)  # the rig's ESTOP
        recorder = _recorder(ctx, backend)
        if recorder is not None:
            cleanup.add("recorder", recorder.close)
        sink = _sink(recorder, backend)
        server = PlantServer(backend, sock, settings, ctx.log, stop_requested=ctx.stop,
                             recorder=sink, faults=faults, on_attach=resources.attached,
                             data=data, run_id=ctx.run_id)
        rt.apply_realtime(realtime_config.plant_cpu, False, realtime_config.sched_priority,
                          False, ctx.log, granted)
    except BaseException:
        rt.leave_realtime()
        cleanup.run(ctx.log)
        raise
    return _run_and_report(ctx, server, cleanup, recorder, granted, resources)


def _run_and_report(ctx: ProcessContext, server: PlantServer, cleanup: Cleanup,
                    recorder: Recorder | None, granted: Any,
                    resources: ResourceMeter) -> tuple[int, dict[str, Any]]:
    """Run the loops; whatever ends them (an exception too), release everything and write
    the whole report: figures, counters and events are never lost to an error."""
    config = ctx.config
    ctx.log.info("plant serving", endpoint=server.sock.endpoint, model=server.backend.describe()
                 ["name"], mode=config.run.mode, rate_hz=config.run.rate_hz,
                 duration_s=config.run.duration_s)
    cpu = rt.CpuMeter()
    error = None
    try:
        with rt.gc_quiet():
            reason = run_plant(server)
    except Exception as exc:
        error = exc
        reason = server.end_reason = f"error: {type(exc).__name__}: {exc}"
        ctx.log.exception("plant loop failed: safe output applied", error=str(exc))
        server.go_safe(reason, server.clock())
    finally:
        usage = cpu.read()
        rt.leave_realtime()  # reports and exit at normal priority: they stall no other loop
        cleanup.run(ctx.log)  # the rig's ESTOP first, then the recorder, the link
        recording = recorder.close().to_dict() if recorder is not None else None
    report = _report(server, recording, granted, usage, resources, cleanup.errors)
    parameters = getattr(server.backend, "parameters", None)
    if parameters is not None:  # the parameter disturbances' events
        report["parameter_changes"] = parameters.events()
    if config.experiment is not None:  # the control metrics of the recording (issue 21)
        from hil.reporting.experiment import experiment_section
        report["experiment"] = experiment_section(
            config.experiment, report["plant"], None if recorder is None
            else ctx.out_dir / "plant.rec", report["duration_s"], config.source_dir)
    if error is not None:
        report["error"] = "".join(traceback.format_exception(error))
    ctx.log.info("plant done", end_reason=reason, cycles=server.cycles,
                 misses=report["deadline"]["misses"], watchdog_trips=report["watchdog"]["trips"])
    ok = error is None and reason in ("duration", "controller left", "stopped")
    return (EXIT_OK if ok else EXIT_FAULT), report


def _report(server: PlantServer, recording: dict[str, Any] | None, granted: Any, usage: Any,
            resources: ResourceMeter, cleanup_errors: list[str]) -> dict[str, Any]:
    report = server.report()
    backend = server.backend
    if isinstance(backend, SerialBackend):
        report["serial"] = backend.report()
        report["serial"]["histograms"] = backend.latency.encode()
        report["latency_us"].update(backend.latency.statistics().to_dict()["figures"])
        if backend.fault is not None:
            print(f"hil-plant: {backend.fault}; the plant is in its safe state", file=sys.stderr)
    if recording is not None:
        report["recording"] = recording
    report["realtime"] = {"granted": granted.granted, "refused": granted.refused}
    report["cpu"] = {"wall_s": usage.wall_s, "cpu_s": usage.cpu_s, "ratio": usage.ratio}
    report["resources"] = resources.report()
    report["endpoint"] = server.sock.endpoint
    if cleanup_errors:
        report["cleanup_errors"] = cleanup_errors
    return report


def main(argv: list[str] | None = None) -> int:
    return run_process("plant", argv, "plant.endpoint", _serve)


def entry() -> None:
    """The `hil-plant` program: main(), then leave without the final collections."""
    leave(main())


if __name__ == "__main__":
    entry()
