"""A controller program of your own in place of hil-controller (`controller.command`, `hil run
--controller-cmd`): its command line, checked before anything starts, and its environment.

The program is started without a shell (the command line is split as a shell would, by
shlex), in the current folder, and learns the run from `HIL_*` environment variables
(`controller_env`; clients/c/README.md lists them). It must say hello to the plant at
`HIL_ENDPOINT` and write its `controller.json` into `HIL_OUT` (libhil, clients/c/, does both);
`hil run` merges that report with the plant's as for hil-controller. Standard library only.
"""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hil.config import Config


class ControllerCommandError(ValueError):
    """The command cannot be started; the message names it and the fix."""


def controller_argv(command: str) -> list[str]:
    """The program and its arguments; ControllerCommandError when the program is not an
    executable file (found as given, or on PATH when it has no slash)."""
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise ControllerCommandError(f"controller.command {command!r} is not a command line "
                                     f"({exc}): quote it as a shell would") from None
    if not argv:
        raise ControllerCommandError("controller.command is empty: give the controller "
                                     "program and its arguments")
    program = argv[0]
    found = shutil.which(program)
    if found is None:
        where = "no such executable file" if os.sep in program else "not found on PATH"
        raise ControllerCommandError(
            f"controller.command: {program}: {where}; build it first (clients/c: make) and "
            "give its path, e.g. --controller-cmd clients/c/build/lqr_dip")
    return argv


def realtime_env(config: Config) -> dict[str, str]:
    """The real-time hygiene hil-controller asks for, for the program to ask the same:
    SCHED_FIFO at `realtime.sched_priority` in realtime runs only (a lockstep loop runs flat
    out: at SCHED_FIFO it would starve the machine; 0: not asked), locked memory, and the
    loop's CPU (-1: not asked)."""
    rt = config.realtime
    fifo = rt.sched_fifo and config.run.mode == "realtime"
    return {"HIL_SCHED_PRIORITY": str(rt.sched_priority if fifo else 0),
            "HIL_LOCK_MEMORY": "1" if rt.lock_memory else "0",
            "HIL_CPU": str(-1 if rt.controller_cpu is None else rt.controller_cpu)}


def controller_env(config: Config, out: Path, run_id: str, cfg_path: Path) -> dict[str, str]:
    """The `HIL_*` variables that tell a controller program about the run.

    `hil run` starts the plant and the program at once. hil-controller's connect timeout
    counts from after its own start-up (seconds of imports); a compiled program says hello in
    milliseconds and would spend its timeout on the plant's start-up (imports and compiling,
    longer on a loaded machine). So the program's timeout is the configured one plus the
    plant's `attach_timeout_s`: as long as the plant itself would wait for a controller."""
    from hil.config import plant_timeout_ms  # loaded already: `config` is one of its models

    controller, run = config.controller, config.run
    connect_s = controller.connect_timeout_s + config.plant.attach_timeout_s
    env = {
        "HIL_ENDPOINT": controller.endpoint,
        "HIL_MODE": run.mode,
        "HIL_OUT": str(out.absolute()),
        "HIL_RUN_ID": run_id,
        "HIL_CONFIG": str(cfg_path.absolute()),
        "HIL_TRANSPORT": run.transport,
        "HIL_RATE_HZ": repr(run.rate_hz),
        "HIL_DURATION_S": repr(run.duration_s),
        "HIL_PHASE_OFFSET": repr(controller.phase_offset),
        "HIL_SPIN_US": repr(controller.spin_us),
        "HIL_CONNECT_TIMEOUT_S": repr(connect_s),
        "HIL_PLANT_TIMEOUT_MS": repr(plant_timeout_ms(config)),
        "HIL_SLEW_LIMIT_PER_S": repr(config.gates.slew_limit_n_per_s),
        "HIL_RECORD": "1" if config.record.enabled else "0",
        "HIL_CLEAR_ON_ATTACH": "1" if controller.clear_on_attach else "0",
        **realtime_env(config),
    }
    if config.security.curve:
        env["HIL_KEYS_DIR"] = str(Path(config.security.keys_dir).absolute())
    return env
