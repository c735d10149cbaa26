"""Simulated plant backend: a numba model integrated between control arrivals.

The input is a vector (one float per input, `apply(u, t_ns)`). Each control acts from the
moment it arrived, not from the next tick: `advance` integrates
piecewise over the arrivals recorded by `apply`, so the simulated plant sees the real link
latency as a rig would, not a whole period of extra delay.

An experiment's actuators (hil/experiment/actuator.py: dead zone, lag, rate limit) are stepped
once per integration step from the held input, and its disturbances (hil/experiment/plan.py
`disturbance_table`) added to their output at the start of each step, at the run time there
(from `start`): the model gets actuator(u) + d(t), saturated at its input limits as any input
is. The recording keeps u (and the experiment's own columns: hil/recording/appended.py).
An operator's push (`hil push`, plant_server/push.py) is added last, over its own interval
(integration steps end at its edges). The experiment's parameter changes
(hil/experiment/parameters.py) take effect at their run time exactly (a step ends there).

The actuators' input delay (`delay_steps` plant periods) shifts each control's arrival that
much later: `apply` queues it, `advance` takes it when it is due, and the input held before
(zero at first) acts meanwhile. In lockstep a control applied at step k acts from step
k + delay_steps, the same every run. The safe output (`apply_safe`) acts at once and drops
the controls still in the line (docs/safety.md: the safe output is applied at once).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from hil.dynamics.contract import PlantStepError
from hil.experiment.actuator import Actuator
from hil.experiment.parameters import ParameterSchedule
from hil.experiment.signals import SignalTable

NEVER = 2**62  # ns: a time no run reaches


class SimBackend:
    def __init__(self, model: Any, initial_state: np.ndarray, max_step_ns: int,
                 disturbance: SignalTable | None = None,
                 actuator: Actuator | None = None,
                 parameters: ParameterSchedule | None = None) -> None:
        n = len(model.state_names)
        state = np.array(initial_state, dtype=np.float64)
        if state.shape != (n,):
            raise ValueError(
                f"initial_state must have {n} entries {list(model.state_names)} for model "
                f"{model.name!r}, got {state.shape[0] if state.ndim == 1 else state.shape}"
            )
        if max_step_ns <= 0:
            raise ValueError(f"max_step_ns must be > 0, got {max_step_ns}")
        self.model = model
        self.name = model.name
        self.state_names = tuple(model.state_names)
        self.state = state
        self._next = np.empty_like(state)
        self._max_step_ns = max_step_ns
        self._t_ns: int | None = None
        self._u = np.zeros(model.inputs.n)  # the input held (a float64 vector)
        self._pending: list[tuple[int, Sequence[float]]] = []
        self.sim_time_ns = 0
        self.disturbance = disturbance
        self.actuator = actuator
        self._disturbed = np.zeros(model.inputs.n)  # u + d, the input the model gets
        self._t_start_ns = 0
        self._delay_ns = 0 if actuator is None else actuator.delay_steps * max_step_ns
        self._delayed: deque[tuple[int, Sequence[float]]] = deque()  # (due, u), in order
        # An operator's push (`push`): added to the input over [_push_from, _push_until).
        self._push = np.zeros(model.inputs.n)
        self._pushed = np.zeros(model.inputs.n)  # the input plus the push
        self._push_from = self._push_until = -1
        # The experiment's parameter changes: the next one from backend time _change_at.
        self.parameters = parameters
        self._change = 0
        self._change_at = NEVER

    # Set when the model's step raised PlantStepError (an FMU's failing call): it stops there
    # and the loop puts the plant safe with this reason. Its ticks need no alignment.
    fault: str | None = None

    def align_start_ns(self, t_ns: int) -> int:
        return t_ns

    def describe(self) -> dict[str, Any]:
        return dict(self.model.describe())

    @property
    def u(self) -> np.ndarray:
        """The input currently held (the newest applied), a new array."""
        return np.array(self._pending[-1][1], dtype=np.float64) if self._pending \
            else self._u.copy()

    def start(self, t_ns: int) -> None:
        """Put the plant's clock at `t_ns`; the initial state holds until then."""
        self._t_ns = t_ns
        self._t_start_ns = t_ns
        self._pending.clear()
        self._delayed.clear()
        self._change = 0
        if self.parameters is not None:
            self.model.use_params(self.parameters.records[0])
            self._change_at = t_ns + self.parameters.times_ns[1]

    def apply(self, u: Sequence[float], t_ns: int) -> None:
        """From `t_ns` on (plus the input delay), the plant's input is `u` (one float per
        input; kept, not copied)."""
        if self._delay_ns:
            self._delayed.append((t_ns + self._delay_ns, u))
        else:
            self._pending.append((t_ns, u))

    def apply_safe(self, u: Sequence[float], t_ns: int) -> None:
        """From `t_ns` on, the plant's input is the safe output `u`, past the input delay
        (the controls due by then still act until then; those due later are dropped), and
        without a push (one under way ends at `t_ns`)."""
        self._take_due(t_ns)
        self._delayed.clear()
        self._pending.append((t_ns, u))
        self._push_until = min(self._push_until, t_ns)  # a push ends where the plant goes safe

    def push(self, index: int, value: float, from_ns: int, until_ns: int) -> None:
        """Add `value` to input `index` from `from_ns` until `until_ns` (backend time), on
        top of the actuators and disturbances; it replaces a push still under way."""
        self._push[:] = 0.0
        self._push[index] = value
        self._push_from, self._push_until = from_ns, until_ns

    @property
    def push_until_ns(self) -> int:
        """When the newest push ends (-1: none yet)."""
        return self._push_until

    def _take_due(self, t_ns: int) -> None:
        delayed = self._delayed
        while delayed and delayed[0][0] <= t_ns:
            self._pending.append(delayed.popleft())

    def advance(self, t_ns: int) -> np.ndarray:
        if self._t_ns is None:
            raise RuntimeError("SimBackend.advance before start()")
        if self.fault is not None:  # stopped where the model failed
            return self.state
        if self._delayed:
            self._take_due(t_ns)
        t = self._t_ns
        held = self._u
        for arrival, u in self._pending:
            if arrival > t:
                end = min(arrival, t_ns)
                self._integrate(t, end)
                t = end
            if len(u) == 1:
                held[0] = u[0]  # (a slice assignment from a list costs ~0.5 us)
            else:
                held[:] = u
        self._pending.clear()
        self._integrate(t, t_ns)
        self._t_ns = max(t, t_ns)
        return self.state

    def _integrate(self, t_from: int, t_to: int) -> None:
        while self._change_at < t_to and self.fault is None:  # a parameter change inside
            at = max(self._change_at, t_from)
            self._steps(t_from, at)
            self._next_parameters()
            t_from = at
        self._steps(t_from, t_to)

    def _next_parameters(self) -> None:
        schedule = self.parameters
        assert schedule is not None
        self._change += 1
        self.model.use_params(schedule.records[self._change])
        times = schedule.times_ns
        self._change_at = NEVER if self._change + 1 >= len(times) else \
            self._t_start_ns + times[self._change + 1]

    def _steps(self, t_from: int, t_to: int) -> None:
        t = t_from
        held = self._u
        dist, actuator = self.disturbance, self.actuator
        push_from, push_until = self._push_from, self._push_until
        while t < t_to and self.fault is None:
            dt = min(t_to - t, self._max_step_ns)
            pushed = push_until > t
            if pushed:  # steps end at the push's edges; it acts over whole steps
                dt = min(dt, (push_from if t < push_from else push_until) - t)
                pushed = t >= push_from
            u = held if actuator is None else actuator.step(held, dt * 1e-9)
            if dist is not None:
                u = np.add(u, dist.at((t - self._t_start_ns) * 1e-9), out=self._disturbed)
            if pushed:
                u = np.add(u, self._push, out=self._pushed)
            try:
                self.model.step(self.state, u, dt * 1e-9, self._next)
            except PlantStepError as exc:  # the model cannot go on: the plant goes safe
                self.fault = str(exc) or type(exc).__name__
                return
            self.state, self._next = self._next, self.state
            t += dt
            self.sim_time_ns += dt

    def close(self) -> None:
        pass
