"""Fault injection for the simulated plant: test a controller's robustness before the rig.

Configured by the `faults` section (hil/config.py) and drawn from one seeded generator, so
a run with the same seed and the same message order sees the same faults:

| fault                | what the plant does                                                 |
|----------------------|---------------------------------------------------------------------|
| `state_latency_ms`   | holds each published state this long before sending it             |
| `control_latency_ms` | holds each arriving control this long before applying it           |
| `jitter_ms`          | adds a uniform 0..jitter_ms to each held message                    |
| `drop_rate`          | loses each state, and each control, with this probability          |
| `sensor_noise_std`   | adds Gaussian noise to each published state entry (the true state, |
|                      | which the plant integrates and records, is untouched)              |

Latency, jitter and drops act on the wall clock and so only in `realtime` mode (a lockstep
plant waits for the answer to each state: a lost one would stall it). Sensor noise works
in both modes.

A frozen controller: stop its process with SIGSTOP and resume it with SIGCONT, from a shell
(`kill -STOP <pid>; sleep 0.2; kill -CONT <pid>`, the pid from `ps`) or with
`freeze(pid, 0.2)` below. The plant's
watchdog trips after `plant.watchdog_timeout_ms`; the resumed controller finds the plant
latched in its safe state until a clear (`hil clear`, or a controller with
`controller.clear_on_attach`).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["FaultInjector", "FaultSettings", "freeze", "settings_from_config"]


@dataclass(frozen=True, slots=True)
class FaultSettings:
    seed: int = 0
    state_latency_ns: int = 0
    control_latency_ns: int = 0
    jitter_ns: int = 0
    drop_rate: float = 0.0
    sensor_noise_std: float | Sequence[float] = 0.0

    def __post_init__(self) -> None:
        for name in ("state_latency_ns", "control_latency_ns", "jitter_ns"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.drop_rate < 1.0:
            raise ValueError(f"drop_rate must be in [0, 1), got {self.drop_rate}")

    @property
    def timing_faults(self) -> bool:
        """True when a fault acts on the wall clock (realtime mode only)."""
        return bool(self.state_latency_ns or self.control_latency_ns or self.jitter_ns
                    or self.drop_rate)


def settings_from_config(faults: Any) -> FaultSettings:
    """`FaultSettings` from the config's `faults` section (hil.config.FaultsConfig)."""
    return FaultSettings(
        seed=faults.seed,
        state_latency_ns=round(faults.state_latency_ms * 1e6),
        control_latency_ns=round(faults.control_latency_ms * 1e6),
        jitter_ns=round(faults.jitter_ms * 1e6),
        drop_rate=faults.drop_rate,
        sensor_noise_std=faults.sensor_noise_std,
    )


class FaultInjector:
    """Draws the faults of one run for a plant with `n_states` state entries."""

    def __init__(self, settings: FaultSettings, n_states: int) -> None:
        std = np.asarray(settings.sensor_noise_std, dtype=np.float64)
        if std.ndim == 0:
            std = np.full(n_states, float(std))
        if std.shape != (n_states,):
            raise ValueError(f"sensor_noise_std must be one number or {n_states} numbers (one "
                             f"per state entry), got {len(std)}")
        if not (np.isfinite(std).all() and (std >= 0).all()):
            raise ValueError(f"sensor_noise_std must be finite and >= 0, got {std.tolist()}")
        self.settings = settings
        self._std = std
        self._noisy = bool(std.any())
        self._rng = np.random.default_rng(settings.seed)
        self.states_dropped = 0
        self.controls_dropped = 0
        self.states_delayed = 0
        self.controls_delayed = 0

    @property
    def active(self) -> bool:
        return self._noisy or self.settings.timing_faults

    def state_delay_ns(self) -> int | None:
        """How long to hold the state about to be published; None: drop it."""
        if self._drops():
            self.states_dropped += 1
            return None
        delay = self._delay(self.settings.state_latency_ns)
        self.states_delayed += delay > 0
        return delay

    def control_delay_ns(self) -> int | None:
        """How long to hold the control that just arrived; None: drop it."""
        if self._drops():
            self.controls_dropped += 1
            return None
        delay = self._delay(self.settings.control_latency_ns)
        self.controls_delayed += delay > 0
        return delay

    def measured(self, state: np.ndarray) -> list[float]:
        """What the sensors report for the true `state`."""
        if not self._noisy:
            measured: list[float] = state.tolist()
            return measured
        noisy: list[float] = (state + self._rng.normal(0.0, 1.0, state.shape) * self._std).tolist()
        return noisy

    def statistics(self) -> dict[str, object]:
        return {
            "seed": self.settings.seed,
            "states_dropped": self.states_dropped,
            "controls_dropped": self.controls_dropped,
            "states_delayed": self.states_delayed,
            "controls_delayed": self.controls_delayed,
        }

    def _drops(self) -> bool:
        return self.settings.drop_rate > 0.0 and self._rng.random() < self.settings.drop_rate

    def _delay(self, latency_ns: int) -> int:
        if self.settings.jitter_ns:
            return latency_ns + int(self._rng.integers(0, self.settings.jitter_ns + 1))
        return latency_ns


def freeze(pid: int, duration_s: float) -> None:
    """Freeze process `pid` for `duration_s` (SIGSTOP, then SIGCONT), e.g. a controller."""
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(duration_s)
    finally:
        os.kill(pid, signal.SIGCONT)
