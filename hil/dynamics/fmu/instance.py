"""One FMU instance, loaded and initialised: the binary, its log, its parameters.

`FmuInstance` extracts the FMU into a temporary folder, finds (or builds from its sources)
the binary for this platform, instantiates it with a logger that keeps the FMU's messages,
sets the parameters `plant.params` names, and runs its initialisation. Every failure is an
FmuError that names the step, the FMU's own log messages and the fix. fmpy is imported here
only, when a plant is an FMU.
"""

from __future__ import annotations

import contextlib
import ctypes
import shutil
import subprocess
import sys
import tempfile
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hil.dynamics.fmu import kernels
from hil.dynamics.fmu.description import KEY, FmuError, FmuPlan, Parameter

LOG_LINES = 20  # the FMU's last log messages kept for an error


class FmuLog:
    """The FMU's log messages (the newest LOG_LINES), through fmpy's varargs proxy."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, env: Any, name: bytes, status: int, category: bytes,
                 message: bytes) -> None:
        """FMI 2's logger (the message formatted by fmpy's proxy)."""
        self.fmi3(env, status, category, message)

    def fmi3(self, env: Any, status: int, category: bytes, message: bytes) -> None:
        """FMI 3's logMessage."""
        label = ("OK", "Warning", "Discard", "Error", "Fatal", "Pending")[status] \
            if 0 <= status <= 5 else str(status)
        self.lines.append(f"[{label}] {message.decode('utf-8', 'replace')}")
        del self.lines[:-LOG_LINES]

    def tail(self) -> str:
        """The messages so far, as the end of an error message."""
        return "; its log: " + " | ".join(self.lines) if self.lines else \
            "; it logged nothing"


def _binary(md: Any, plan: FmuPlan, unzipdir: Path) -> None:
    """The binary for this platform exists, or is built from the FMU's sources."""
    import fmpy  # type: ignore[import-untyped]

    found = fmpy.supported_platforms(str(unzipdir))
    if fmpy.platform in found:
        return
    if "c-code" not in found:
        folder = fmpy.platform if plan.fmi_version == 2 else fmpy.platform_tuple
        raise FmuError(f"{KEY}: {md.modelName} has no binary for this platform "
                       f"({fmpy.platform}: binaries/{folder}/"
                       f"{plan.model_identifier}.so) and no sources to build one; it has "
                       f"binaries for {', '.join(found) or 'no platform'}. Export it for "
                       f"{fmpy.platform}, or with its C sources (docs/fmu.md)")
    _build_from_sources(md, unzipdir)


def _build_from_sources(md: Any, unzipdir: Path) -> None:
    """The binary for this platform from the FMU's C sources, with CMake (fmpy's project);
    FmuError with the build's last output lines if it fails."""
    import fmpy
    from fmpy.build import create_cmake_settings  # type: ignore[import-untyped]

    cmake = shutil.which("cmake") or str(Path(sys.executable).with_name("cmake"))
    with tempfile.TemporaryDirectory(prefix="hil-fmu-build-") as build:
        try:
            create_cmake_settings(unzipdir, build)
        except Exception as exc:
            raise FmuError(f"{KEY}: {md.modelName} has no binary for {fmpy.platform} and its "
                           f"sources cannot be built: {exc}") from None
        source = str(Path(fmpy.__file__).parent / "c-code")
        for command in ([cmake, "-S", source, "-B", build],
                        [cmake, "--build", build, "--target", "install", "--config", "Release"]):
            done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                                  check=False)
            if done.returncode != 0:
                tail = " | ".join((done.stdout + done.stderr).strip().splitlines()[-8:])
                raise FmuError(f"{KEY}: {md.modelName} has no binary for {fmpy.platform}, and "
                               f"building one from its sources failed ({' '.join(command)}): "
                               f"{tail}")


def _callbacks(log: FmuLog) -> Any:
    from fmpy import calloc, free
    from fmpy.fmi2 import (  # type: ignore[import-untyped]
        fmi2CallbackAllocateMemoryTYPE,
        fmi2CallbackFreeMemoryTYPE,
        fmi2CallbackFunctions,
        fmi2CallbackLoggerTYPE,
    )
    from fmpy.logging import addLoggerProxy  # type: ignore[import-untyped]

    callbacks = fmi2CallbackFunctions()
    callbacks.logger = fmi2CallbackLoggerTYPE(log)
    callbacks.allocateMemory = fmi2CallbackAllocateMemoryTYPE(calloc)
    callbacks.freeMemory = fmi2CallbackFreeMemoryTYPE(free)
    addLoggerProxy(ctypes.byref(callbacks))
    return callbacks


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# A parameter's type: the fmpy setter and the check of a plant.params value.
SETTERS = {"Real": ("setReal", _is_real), "Float64": ("setFloat64", _is_real),
           "Integer": ("setInteger", _is_int), "Int32": ("setInt32", _is_int),
           "Boolean": ("setBoolean", lambda value: isinstance(value, bool))}


def _set_parameter(fmu: Any, name: str, parameter: Parameter, value: Any) -> None:
    setter, fits = SETTERS[parameter.type]
    if not fits(value):
        raise FmuError(f"plant.params: {name} is a parameter of type {parameter.type} of the "
                       f"FMU, got {value!r}")
    getattr(fmu, setter)([parameter.value_reference], [value])


def _set_parameters(fmu: Any, plan: FmuPlan, params: Mapping[str, Any], log: FmuLog) -> None:
    unknown = sorted(set(params) - set(plan.parameters))
    if unknown:
        raise FmuError(f"plant.params: {plan.model_name} has no parameter(s) "
                       f"{', '.join(map(repr, unknown))}; its parameters: "
                       f"{', '.join(plan.parameters) or 'none'}")
    for name, value in params.items():
        try:
            _set_parameter(fmu, name, plan.parameters[name], value)
        except FmuError:
            raise
        except Exception as exc:
            raise FmuError(f"plant.params: {plan.model_name} refused {name} = {value!r} "
                           f"({exc}){log.tail()}") from None


def _initialise(fmu: Any, plan: FmuPlan, log: FmuLog) -> None:
    prefix = f"fmi{plan.fmi_version}"
    step = f"{prefix}EnterInitializationMode"
    try:
        if plan.fmi_version == 2:
            step = "fmi2SetupExperiment"
            fmu.setupExperiment(startTime=0.0)
            step = "fmi2EnterInitializationMode"
            fmu.enterInitializationMode()
        else:
            fmu.enterInitializationMode(startTime=0.0)
        step = f"{prefix}ExitInitializationMode"
        fmu.exitInitializationMode()
        if plan.kind == "model_exchange":
            step = "fmi2NewDiscreteStates" if plan.fmi_version == 2 else \
                "fmi3UpdateDiscreteStates"
            _settle_events(fmu, plan)
            step = f"{prefix}EnterContinuousTimeMode"
            fmu.enterContinuousTimeMode()
    except FmuError:
        raise
    except Exception as exc:
        raise FmuError(f"{KEY}: {plan.model_name} failed to initialise: {step}: {exc}"
                       f"{log.tail()}; check plant.params against the model's own "
                       f"constraints") from None


def _settle_events(fmu: Any, plan: FmuPlan) -> None:
    settle = fmu.newDiscreteStates if plan.fmi_version == 2 else fmu.updateDiscreteStates
    for _ in range(100):
        needed, terminate, _, _, time_event, at = settle()
        if terminate:
            raise FmuError(f"{KEY}: {plan.model_name} asked to terminate at initialisation")
        if time_event:
            raise FmuError(f"{KEY}: {plan.model_name} schedules a time event (at {at} s); the "
                           f"runtime does not handle events in model exchange: export it "
                           f"without events, or as co-simulation")
        if not needed:
            return
    raise FmuError(f"{KEY}: {plan.model_name}'s event iteration at initialisation did not end")


class FmuInstance:
    """An instantiated, initialised FMU and what the kernels call: `functions` (addresses in
    the kernels' call order, 0 for those not called), `component` (the instance's address);
    freed, with its folder, when collected or closed."""

    def __init__(self, path: Path, md: Any, plan: FmuPlan, params: Mapping[str, Any]) -> None:
        self.plan = plan
        self.log = FmuLog()
        self._dir = Path(tempfile.mkdtemp(prefix="hil-fmu-"))
        self._finalizer: Any = weakref.finalize(self, shutil.rmtree, self._dir, True)
        _extract(path, self._dir)
        _binary(md, plan, self._dir)
        self.fmu = self._instantiate(md)
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _release, self.fmu, self._dir)
        _set_parameters(self.fmu, plan, params, self.log)
        _initialise(self.fmu, plan, self.log)
        self.component = int(self.fmu.component)
        needed = kernels.needed_calls(plan.kind, plan.fmi_version)
        self.functions = [int(ctypes.cast(getattr(self.fmu.dll, name), ctypes.c_void_p).value
                              or 0) if name in needed else 0
                          for name in kernels.calls(plan.fmi_version)]

    def _instantiate(self, md: Any) -> Any:
        from fmpy.fmi2 import FMU2Model, FMU2Slave
        from fmpy.fmi3 import FMU3Model, FMU3Slave  # type: ignore[import-untyped]

        plan = self.plan
        me = plan.kind == "model_exchange"
        kind = (FMU2Model if me else FMU2Slave) if plan.fmi_version == 2 else \
            (FMU3Model if me else FMU3Slave)
        try:
            fmu = kind(guid=md.guid, unzipDirectory=str(self._dir),
                       modelIdentifier=plan.model_identifier, instanceName="hil-plant")
        except Exception as exc:
            raise FmuError(f"{KEY}: {plan.model_name}'s binary cannot be loaded: "
                           f"{exc}") from None
        call = f"fmi{plan.fmi_version}Instantiate"
        try:
            if plan.fmi_version == 2:
                self._callbacks = _callbacks(self.log)
                fmu.instantiate(callbacks=self._callbacks)
            else:
                fmu.instantiate(logMessage=self.log.fmi3)
        except Exception as exc:
            fmu.freeLibrary()
            raise FmuError(f"{KEY}: {plan.model_name} failed to instantiate "
                           f"({call}: {exc}){self.log.tail()}; was the FMU exported whole "
                           f"(its GUID or instantiationToken, its resources)?") from None
        return fmu

    def close(self) -> None:
        """Terminate and free the instance, unload the binary, remove the folder."""
        self._finalizer()


def _extract(path: Path, unzipdir: Path) -> None:
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            archive.extractall(unzipdir)
    except (zipfile.BadZipFile, OSError) as exc:
        raise FmuError(f"{KEY}: {path} cannot be read as an FMU (a zip archive): {exc}") \
            from None


def _release(fmu: Any, folder: Path) -> None:
    with contextlib.suppress(Exception):  # a failed FMU may refuse; it is freed all the same
        fmu.terminate()
    try:
        fmu.freeInstance()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
