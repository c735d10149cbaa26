"""`hil-controller`: run a control law against a plant over ZeroMQ; write controller.json."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from controller_client.controllers import GainError, UnknownControllerError, create_controller
from controller_client.loop import ControllerLoop, HandshakeRefused, LoopSettings, PlantUnreachable
from hil.app.process import (
    EXIT_FAULT,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    ProcessContext,
    ResourceMeter,
    run_process,
)
from hil.config import Config, ConfigError
from hil.link.security import CurveKeyError
from hil.link.transport import ControllerSocket
from hil.recording.recorder import Recorder, controller_columns
from hil.runtime import rt
from hil.runtime.stability import StabilityMonitor


def law_from_config(config: Config) -> Any:
    """A fresh control law as `config` names it; ConfigError naming the key otherwise."""
    controller_config = config.controller
    # The laws integrate with a fixed period: the run's, unless the options say otherwise.
    options = {"dt_s": 1.0 / config.run.rate_hz, **controller_config.options}
    try:
        return create_controller(controller_config.name, controller_config.gains, **options)
    except UnknownControllerError as exc:
        raise ConfigError(f"controller.name: {exc}") from None
    except GainError as exc:
        raise ConfigError(f"controller.gains: {exc}") from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"controller.options: {exc}") from None


def _control(ctx: ProcessContext) -> tuple[int, dict[str, Any]]:
    config = ctx.config
    resources = ResourceMeter()
    law = law_from_config(config)
    # Compile and warm the law before the handshake starts the plant's clock.
    warm = np.array(config.plant.initial_state, dtype=np.float64)
    for _ in range(3):
        law.compute(warm, 0.0)
    law.reset()
    controller_config = config.controller
    settings = LoopSettings(
        phase_offset=controller_config.phase_offset,
        spin_ns=round(controller_config.spin_us * 1e3),
        connect_timeout_ns=round(controller_config.connect_timeout_s * 1e9),
        plant_timeout_ns=round(controller_config.plant_timeout_ms * 1e6),
        clear_on_attach=controller_config.clear_on_attach,
        lockstep_spin_ns=round(config.run.lockstep_spin_us * 1e3),
    )
    rtc = config.realtime
    # Scheduling first, so ZeroMQ's I/O thread and the recorder's thread inherit it.
    granted = rt.apply_realtime(None, rtc.sched_fifo, rtc.sched_priority, rtc.lock_memory,
                                ctx.log)
    try:
        sock = ControllerSocket(controller_config.endpoint, curve_keys_dir=config.security.keys_dir
                                if config.security.curve else None)
    except CurveKeyError as exc:
        raise ConfigError(f"security.keys_dir: {exc}") from None
    rate_hz = config.run.rate_hz
    stability = StabilityMonitor(law.max_force_n, config.gates.slew_limit_n_per_s / rate_hz,
                                 window=max(1, round(rate_hz)), sigma_floor=law.sigma_floor)

    def open_recorder(description: dict[str, Any]) -> Recorder:
        names = description["state_names"]
        columns = controller_columns(names, description.get("state_units") or [""] * len(names))
        return Recorder.from_config(ctx.out_dir / "controller.rec", columns, config.record, {
            "run_id": ctx.run_id, "process": "controller", "controller": controller_config.name,
            "t0_ns": description.get("t0_ns"), "mode": description.get("mode"),
            "sigma_floor": law.sigma_floor})

    loop = ControllerLoop(law, sock, settings, ctx.log, stop_requested=ctx.stop,
                          stability=stability,
                          open_recorder=open_recorder if config.record.enabled else None,
                          on_attach=resources.attached)
    rt.apply_realtime(rtc.controller_cpu, False, rtc.sched_priority, False, ctx.log, granted)
    cpu = rt.CpuMeter()
    code = EXIT_OK
    try:
        with rt.gc_quiet():
            reason = loop.run()
        if reason.startswith("plant silent"):
            print(f"hil-controller: {reason}", file=sys.stderr)
            code = EXIT_UNREACHABLE
    except PlantUnreachable as exc:
        loop.end_reason = str(exc)
        print(f"hil-controller: {exc}", file=sys.stderr)
        code = EXIT_UNREACHABLE
    except HandshakeRefused as exc:
        loop.end_reason = f"refused by the plant: {exc}"
        print(f"hil-controller: refused by the plant at {controller_config.endpoint}: {exc}",
              file=sys.stderr)
        code = EXIT_REFUSED
    finally:
        usage = cpu.read()
        try:
            loop.send_bye()
        finally:
            sock.close()
            recording = loop.recorder.close().to_dict() if loop.recorder is not None else None
    report = loop.report()
    report["realtime"] = {"granted": granted.granted, "refused": granted.refused}
    report["cpu"] = {"wall_s": usage.wall_s, "cpu_s": usage.cpu_s, "ratio": usage.ratio}
    report["resources"] = resources.report()
    report["endpoint"] = controller_config.endpoint
    report["law"] = law.describe()
    report["stability"] = stability.summary()
    if recording is not None:
        report["recording"] = recording
    ctx.log.info("controller done", end_reason=loop.end_reason, controls=loop.control_seq,
                 overruns=loop.overruns, dropped=loop.states_dropped)
    if code == EXIT_OK and loop.end_reason == "stopped" and ctx.stop.signal is None:
        code = EXIT_FAULT
    return code, report


def main(argv: list[str] | None = None) -> int:
    return run_process("controller", argv, "controller.endpoint", _control)


if __name__ == "__main__":
    sys.exit(main())
