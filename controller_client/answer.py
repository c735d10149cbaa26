"""The answer to a state: call the law, check what it returned, send the control, record it.

`Answerer.send` is the loop's hot path: it keeps everything it needs in its own slots, reads
no attribute chains and allocates only the recorder's row. The law's t is, in lockstep,
simulated time (the plant publishes state seq k at k periods: exact, the same on every run),
in realtime the plant's time since the run's start (its stamp, both on our clock).

An experiment (docs/experiments.md) adds two steps before the law: the sensors rewrite the
state the law gets (noise, quantisation, delay: hil/experiment/sensors.py; the recorder keeps
the true state, and what the law saw after the row's own columns: `sensed_columns`), and a
law that takes a target (`controller_client.law.takes_target`) gets the run's target at the
same t (hil/experiment/signals.py: a vector overwritten per control).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from controller_client.law import ControlLaw
from controller_client.output import LawOutputError, law_output
from controller_client.ports import Clock, ControllerDataPlane, Recorder, Stability
from hil.experiment.sensors import Sensors
from hil.experiment.signals import SignalTable
from hil.recording.recorder import Column
from hil.runtime.latency import LatencyMonitor


def sensed_columns(state_names: list[str], state_units: list[str]) -> list[Column]:
    """The columns controller.rec gets with sensors, after its own: what the law saw of each
    state (`sensed_<state>`, in the state's unit), beside the true state."""
    return [Column(f"sensed_{name}", unit)
            for name, unit in zip(state_names, state_units, strict=True)]


class LawError(Exception):
    """The control law raised inside `compute`, or returned something that is not an input;
    the original is `__cause__`."""

    def __init__(self, law: str, error: BaseException) -> None:
        if isinstance(error, LawOutputError):
            super().__init__(str(error))
        else:
            super().__init__(f"control law {law} raised {type(error).__name__}: {error}")
        self.law = law


@dataclass(frozen=True)
class Timebase:
    """How a state's time is given to the law (see the module docstring)."""

    lockstep: bool
    t0_ns: int  # the plant's first tick, our clock
    period_ns: int
    clock_offset_ns: int  # plant clock - ours: times on the wire are the plant's


class Answerer:
    """Sends one control per answered state through `data`; counts them in `control_seq`."""

    __slots__ = ("_clock", "_data", "_latency", "_law", "_lockstep", "_n_inputs", "_name",
                 "_offset_ns", "_period_ns", "_recorder", "_sensors", "_stability", "_state",
                 "_t0_ns", "_target", "control_seq")

    def __init__(self, law: ControlLaw, law_name: str, data: ControllerDataPlane,
                 n_states: int, timebase: Timebase, latency: LatencyMonitor, clock: Clock,
                 recorder: Recorder | None = None, stability: Stability | None = None,
                 n_inputs: int = 1, target: SignalTable | None = None,
                 sensors: Sensors | None = None) -> None:
        """`target`: the run's target, passed to a law that takes one (None: the law gets
        `compute(state, t)`); `sensors`: what the law sees of the state (None: all of it)."""
        self._law = law
        self._target = target
        self._sensors = sensors
        self._n_inputs = n_inputs
        self._name = law_name
        self._data = data
        self._state = np.zeros(n_states)
        self._lockstep = timebase.lockstep
        self._t0_ns = timebase.t0_ns
        self._period_ns = timebase.period_ns
        self._offset_ns = timebase.clock_offset_ns
        self._latency = latency
        self._clock = clock
        self._recorder = recorder
        self._stability = stability
        self.control_seq = 0

    def send(self, seq: int, t_ns: int, rx_ns: int, values: list[float],
             lateness_ns: int) -> None:
        """Answer state `seq` (stamped `t_ns`, received `rx_ns`, our clock); LawError if the
        law raises or returns no input, shm.Replaced if another controller took over."""
        state = self._state
        state[:] = values
        t_s = seq * self._period_ns * 1e-9 if self._lockstep else (t_ns - self._t0_ns) * 1e-9
        sensors, target = self._sensors, self._target
        if sensors is not None:
            sensors.sense(state)
        law = self._law
        clock = self._clock
        c0 = clock()
        try:
            out = law.compute(state, t_s) if target is None else \
                law.compute(state, t_s, target.at(t_s))  # type: ignore[call-arg]
        except Exception as exc:
            raise LawError(self._name, exc) from exc
        c1 = clock()
        u = [out] if type(out) is float and self._n_inputs == 1 else self._checked(out)
        control_seq = self.control_seq + 1
        self.control_seq = control_seq
        t_send = clock()
        off = self._offset_ns
        self._data.send_control(control_seq, seq, u, rx_ns + off, t_send + off, c1 - c0)
        self._latency.record_ns("compute", c1 - c0)
        sigma, condition = law.sigma, law.mass_condition
        if self._recorder is not None:
            if sensors is None:
                self._recorder.record((control_seq, seq, t_ns, rx_ns, t_send, c1 - c0,
                                       lateness_ns, *values, *u, sigma, condition))
            else:
                self._recorder.record((control_seq, seq, t_ns, rx_ns, t_send, c1 - c0,
                                       lateness_ns, *values, *u, sigma, condition, *state))
        if self._stability is not None:
            self._stability.update(sigma, u, condition)

    def _checked(self, value: object) -> list[float]:
        """What the law returned as one float per input, or LawError saying what it was."""
        try:
            checked = law_output(self._name, value, self._n_inputs)
        except LawOutputError as exc:
            raise LawError(self._name, exc) from exc
        return [checked] if isinstance(checked, float) else list(checked)
